"""The benchmark builder: deterministic from its seed, refuses unknown conditions."""

from __future__ import annotations

from pathlib import Path

import pytest

from artefact.index.bench import builder as B

from index_helpers import SAMPLE_CSV, SAMPLE_IMAGES


def test_benchmark_is_deterministic_from_its_seed(tmp_path: Path) -> None:
    spec = B.BenchmarkSpec(conditions=("clutter", "noise"), severities=(2,), objects_per_condition=2, seed=5,
                           skimage_distractors=False, distractor_dir=SAMPLE_IMAGES.parent / "queries", use_pairs=False)
    a = B.build_benchmark(tmp_path / "a", SAMPLE_CSV, SAMPLE_IMAGES, spec)
    b = B.build_benchmark(tmp_path / "b", SAMPLE_CSV, SAMPLE_IMAGES, spec)
    assert a.queries_path.read_text() == b.queries_path.read_text()
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*.jpg"))
    assert files and all((a.root / f).read_bytes() == (b.root / f).read_bytes() for f in files)
    qs = a.queries()
    assert sum(not q.is_distractor for q in qs) == 2 * 2 and all(p.is_file() for q in qs for p in q.photos)
    assert {q.condition for q in qs if q.is_distractor} >= {"plain"}
    with pytest.raises(ValueError, match="unknown condition"):
        B.build_benchmark(tmp_path / "c", SAMPLE_CSV, SAMPLE_IMAGES, B.BenchmarkSpec(conditions=("fog",)))
