"""The offline model's built-in calibration re-measured on data it was never fitted on.

`BUILTIN` in artefact.index.calibration states held-out precision for its two verdict levels
(fitted on the sample benchmark built with seed 101). Here a benchmark of the same kind but
another seed is built, searched the way the service searches (one query at a time, second
look on), and the officer-facing verdicts of the top answers are counted: the precision each
level states must stand unless the fresh queries rule it out.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from artefact.index.bench.builder import BenchmarkSpec, build_benchmark
from artefact.index.bench.metrics import verdict_metrics
from artefact.index.bench.runner import evaluate
from artefact.index.calibration import BUILTIN
from artefact.index.library import Library

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
FRESH_SEED = 2026  # not the fitting seed (101)


@pytest.fixture(scope="module")
def fresh_verdicts(tmp_path_factory, offline_sample_home, offline_embedder):
    root = tmp_path_factory.mktemp("fresh-calibration")
    spec = BenchmarkSpec(objects_per_condition=3, seed=FRESH_SEED, use_pairs=False)
    bench = build_benchmark(root / "bench", SAMPLE / "catalogue.csv", SAMPLE / "images", spec)
    home = root / "home"
    shutil.copytree(offline_sample_home, home)
    with Library(home) as library:
        in_use = library.calibration(uses_inliers=True)
        assert in_use is not None and in_use.source.startswith("built in"), in_use  # what is re-measured
        run = evaluate(library, offline_embedder, bench.queries(), k=5)
    return verdict_metrics(run.results), run.results


def test_fresh_queries_keep_the_builtin_precision(fresh_verdicts) -> None:
    from scipy.stats import binomtest

    metrics, results = fresh_verdicts
    stated = BUILTIN[("efficientnet_lite0", True)].precision
    assert sum(r.expected_id is None for r in results) >= 20 and len(results) >= 130
    for level, stated_precision in (("strong", stated["strong"]), ("close", stated["possible"])):
        m = metrics[level]
        n = m["called"]
        hits = round(m["precision"] * n)
        assert n >= 60, (level, m)  # enough answers at the level for the bound to mean something
        # The stated figure stands unless the fresh answers rule it out: the 99% Wilson interval
        # of the measured precision must reach it.
        ci = binomtest(hits, n).proportion_ci(confidence_level=0.99, method="wilson")
        assert ci.high >= stated_precision - 0.005, (level, hits, n, ci, stated_precision)
