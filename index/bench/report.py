"""The evaluation report: report.json (one summary per run, a side-by-side table), PNG plots and a text table."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from artefact.embed.fileio import atomic_write_text
from artefact.index.bench.metrics import KS

if TYPE_CHECKING:
    from artefact.index.bench.runner import EvalRun


def _clean(x: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else round(float(x), 6)
    if isinstance(x, np.integer):
        return int(x)
    return x


def build_report(runs: Sequence[EvalRun]) -> dict[str, Any]:
    """The JSON report: one summary per configuration plus a side-by-side table."""
    summaries = [r.summary() for r in runs]
    table = [
        {"label": s["label"], "model": s["config"]["model"],
         **{m: s["overall"][m] for m in ("recall@1", "recall@5", "recall@10", "mAP", "MRR", "GAP")},
         "strong_recall": s["overall"]["verdicts"]["strong"]["recall"],
         "strong_precision": s["overall"]["verdicts"]["strong"]["precision"],
         "close_recall": s["overall"]["verdicts"]["close"]["recall"],
         "close_precision": s["overall"]["verdicts"]["close"]["precision"],
         "false_alarm_strong": s["overall"]["verdicts"]["strong"]["false_alarm"],
         "false_alarm_close": s["overall"]["verdicts"]["close"]["false_alarm"],
         "latency_p50_ms": s["overall"]["latency_ms"]["p50"], "latency_p95_ms": s["overall"]["latency_ms"]["p95"]}
        for s in summaries
    ]
    return _clean({
        "metric_notes": {
            "ranks": "positions in the service's own answer order (artefact.index.search.answer_order): "
                     "ties broken as the service breaks them",
            "recall@k/mAP/MRR": "over queries with a true object in the catalogue",
            "GAP": "calibrated: all queries' top-1 answers sorted by probability (similarity when uncalibrated); "
                   "(1/M) sum P(i) rel(i); distractors are false positives; at equal confidence wrong answers first",
            "verdicts": "top answer's verdict: precision over all queries called at that level, recall over queries "
                        "with a true object, false alarms over distractors; close = strong or possible",
        },
        "comparison": table,
        "runs": summaries,
        "queries": {r.label: [asdict(q) for q in r.results] for r in runs},
    })


def write_report(out: Path, runs: Sequence[EvalRun], plots: bool = True) -> dict[str, Any]:
    """Write report.json (and PNG plots) into `out`; returns the report with `files` listing what was written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(runs)
    files = []
    if plots:
        files = [str(p) for p in write_plots(out, report)]
    report["files"] = ["report.json", *[Path(f).name for f in files]]
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, ensure_ascii=False))
    return report


def write_plots(out: Path, report: Mapping[str, Any]) -> list[Path]:
    """recall@k bars, true-vs-distractor score histograms, recall@1 by condition, PR curve and false alarms."""
    # Imported here, not at module level: matplotlib is slow to import and only plots need it,
    # and its file-only backend must be chosen before pyplot is first imported.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    plots = {
        "recall_at_k.png": _recall_at_k,
        "score_distributions.png": _score_distributions,
        "recall_by_condition.png": _recall_by_condition,
        "pr_and_false_alarms.png": _pr_and_false_alarms,
    }
    paths = []
    for name, draw in plots.items():
        fig = draw(plt, runs)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        paths.append(out / name)
    return paths


def _val(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _bar_width(runs: Sequence[Mapping[str, Any]]) -> float:
    return 0.8 / max(1, len(runs))


def _recall_at_k(plt: Any, runs: Sequence[Mapping[str, Any]]) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4))
    width = _bar_width(runs)
    for i, s in enumerate(runs):
        ys = [_val(s["overall"][f"recall@{k}"]) for k in KS]
        ax.bar(np.arange(len(KS)) + i * width, ys, width, label=s["label"])
    ax.set_xticks(np.arange(len(KS)) + width * (len(runs) - 1) / 2, [f"recall@{k}" for k in KS])
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Recall@k (queries with a true object)")
    return fig


def _score_distributions(plt: Any, runs: Sequence[Mapping[str, Any]]) -> Any:
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.5), squeeze=False)
    for ax, s in zip(axes[0], runs):
        bins = np.linspace(min([0.0, *s["overall"]["score_true_match"], *s["overall"]["score_distractor_top1"]]), 1, 31)
        ax.hist(s["overall"]["score_true_match"], bins=bins, alpha=0.6, label="true object's score")
        ax.hist(s["overall"]["score_distractor_top1"], bins=bins, alpha=0.6, label="distractor's best score")
        thr = s["config"].get("threshold")
        if thr is not None:
            ax.axvline(thr, color="k", ls="--", lw=1, label=f"threshold {thr}")
        ax.set_title(s["label"])
        ax.set_xlabel("cosine similarity")
        ax.legend(fontsize=7)
    return fig


def _recall_by_condition(plt: Any, runs: Sequence[Mapping[str, Any]]) -> Any:
    conds = sorted({c for s in runs for c in s["by_condition"]})
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(conds)), 4))
    width = _bar_width(runs)
    for i, s in enumerate(runs):
        ys = [_val(s["by_condition"].get(c, {}).get("recall@1")) for c in conds]
        ax.bar(np.arange(len(conds)) + i * width, ys, width, label=s["label"])
    ax.set_xticks(np.arange(len(conds)) + width * (len(runs) - 1) / 2, conds, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("recall@1")
    ax.set_title("Recall@1 by condition")
    ax.legend()
    return fig


def _pr_and_false_alarms(plt: Any, runs: Sequence[Mapping[str, Any]]) -> Any:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for s in runs:
        pr = s["overall"]["pr_curve"]
        a1.plot(pr["recall"], pr["precision"], label=f"{s['label']} (GAP {_val(s['overall']['GAP']):.2f})")
        fa = s["overall"]["false_alarm"]
        a2.plot(fa["threshold"], [_val(v) for v in fa["rate"]], label=f"{s['label']}: false alarms")
        a2.plot(fa["threshold"], [_val(v) for v in fa["true_detection_rate"]], ls="--",
                label=f"{s['label']}: correct top-1 >= t")
    a1.set_xlabel("recall")
    a1.set_ylabel("precision")
    a1.set_title("Top-1 answers ranked by confidence")
    a1.legend(fontsize=7)
    a2.set_xlabel("decision threshold")
    a2.set_title("False alarms on distractors vs detections")
    a2.legend(fontsize=7)
    return fig


def format_table(report: Mapping[str, Any], section: str = "by_condition") -> str:
    """A plain-text table of one breakdown for every run (for the CLI and the notebook)."""
    lines = []
    for s in report["runs"]:
        lines.append(f"[{s['label']}] {s['config']['model']}")
        lines.append(f"  {'':<24} {'n':>5} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'mAP':>6} {'GAP':>6} {'distr.max':>9}")
        for name, m in s[section].items():
            lines.append(f"  {name:<24} {m['queries']:>5} {_cell(m['recall@1'])} {_cell(m['recall@5'])} "
                         f"{_cell(m['recall@10'])} {_cell(m['mAP'])} {_cell(m['GAP'])} {_cell(m['distractor_top1_max']):>9}")
    return "\n".join(lines)


def _cell(x: Any) -> str:
    return "   -  " if x is None else f"{x:6.3f}"
