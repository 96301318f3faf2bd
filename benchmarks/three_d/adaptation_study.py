"""A learned linear adaptation of the embedding (supervised whitening), trained on turned 3D objects of its own.

Instance retrieval often gains from a linear map learned on matching pairs: whiten the
embedding by the covariance of the differences between views of one object, so that the
directions in which an object's views vary (pose, light) count less than those in which
objects differ. This study measures whether that lifts turned 3D objects here without hurting
the recall benchmark's other conditions, on embeddings alone (no index, no re-ranking):

1. renders TRAINING objects that are not in the benchmark (other seeds; same four families,
   textured and plain), each from a catalogue view and several turned query-style views;
2. fits the map on them: mean m, within-object covariance Cw shrunk towards a multiple of the
   identity by alpha (Ledoit-Wolf style: the 1280-d covariance of a few hundred views is
   singular), x -> normalise(Cw_alpha^-1/2 (x - m));
3. picks alpha by leave-objects-out on the training objects alone (never on the test data);
4. reports R@1/R@5 on the 3D benchmark (1, 2, 4 catalogue views) and on the recall benchmark
   (data/sample catalogue, queries of a `bench-build` folder, distractors left out) for the
   plain embedding, centring alone, and each alpha.

Usage:
  .venv/bin/python benchmarks/three_d/adaptation_study.py --data /tmp/artefact-3d --bench /tmp/a3d-eval/bench7 \\
      [--train /tmp/artefact-3d-train] [--train-objects 40] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_objects as mo  # noqa: E402

from artefact.embed.loader import load_embedder  # noqa: E402
from artefact.embed.models import OFFLINE_FALLBACK_SPEC, LoadOptions  # noqa: E402
from artefact.embed.preprocess import load_photo  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
TRAIN_VIEWS = (30, 75, 120, 180, 240, 300)  # query-style views beside the catalogue view at 0
TRAIN_SEED = 70_000  # far from the benchmark's seeds (1000-2999 catalogue, 5000-10999 distractors)
VIEWS = {1: ("c000",), 2: ("c000", "c180"), 4: ("c000", "c180", "c090", "c270")}
ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def train_objects(n_per_group: int) -> list[mo.Obj]:
    out = []
    for textured, tag in ((True, "T"), (False, "P")):
        for i in range(n_per_group):
            out.append(mo.Obj(f"TRN-{tag}{i + 1:03d}", mo.KINDS[(i + 2) % len(mo.KINDS)], textured,
                              TRAIN_SEED + 1000 * textured + i, True))
    return out


def render_training(objs: list[mo.Obj], folder: Path, workers: int) -> dict[str, list[Path]]:
    jobs, paths = [], {}
    for o in objs:
        paths[o.object_id] = [folder / o.object_id / "c000.png"]
        jobs.append((mo.scene(o, 0, False), paths[o.object_id][0], 400, 400))
        for n, az in enumerate(TRAIN_VIEWS):
            w, h = (360, 480) if n % 2 else (480, 360)
            png = folder / o.object_id / f"q{az:03d}.png"
            jobs.append((mo.scene(o, az, True), png, w, h))
            paths[o.object_id].append(png)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        made = sum(1 for _, _, fresh in pool.map(mo.render, jobs) if fresh)
    print(f"training renders: {len(jobs)} ({made} new) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return paths


class Embeddings:
    def __init__(self) -> None:
        self.embedder = load_embedder(OFFLINE_FALLBACK_SPEC, LoadOptions(allow_download=False))
        self.cache: dict[Path, np.ndarray] = {}

    def __call__(self, paths: list[Path]) -> np.ndarray:
        todo = [p for p in dict.fromkeys(paths) if p not in self.cache]
        for start in range(0, len(todo), 32):
            chunk = todo[start : start + 32]
            arrays = [load_photo(p.read_bytes(), self.embedder.preprocess)[1] for p in chunk]
            for p, v in zip(chunk, self.embedder.embed_prepared(arrays)):
                self.cache[p] = v
        return np.stack([self.cache[p] for p in paths]) if paths else np.zeros((0, 1), np.float32)


Model = tuple[np.ndarray, np.ndarray, np.ndarray]  # mean, within-object eigenvalues, eigenvectors


def fit(vectors: np.ndarray, labels: np.ndarray) -> Model:
    """Mean, and the eigen-decomposition of the within-object covariance (shrinkage applied later)."""
    mean = vectors.mean(axis=0)
    dev = np.concatenate([vectors[labels == o] - vectors[labels == o].mean(axis=0) for o in np.unique(labels)])
    cw = dev.T @ dev / len(dev)
    evals, evecs = np.linalg.eigh(cw)
    return mean, np.clip(evals, 0, None), evecs


def adapt(model: Model | None, alpha: float | None, x: np.ndarray,
              rank: int = 0) -> np.ndarray:
    """Apply the map; `rank` > 0 keeps only the `rank` directions of largest within-object variance
    (the rest scaled as if they had none): what a package would ship as mean + low-rank part."""
    if model is None:
        y = x
    else:
        mean, evals, evecs = model
        y = x - mean
        if alpha is not None:
            target = evals.mean()
            kept = evals.copy()
            if rank:
                kept[: len(kept) - rank] = 0.0  # eigh sorts ascending: the last `rank` are the largest
            scale = 1.0 / np.sqrt((1 - alpha) * kept + alpha * target)
            y = (y @ evecs) * scale  # whitened coordinates (a rotation does not change cosines)
    return y / np.linalg.norm(y, axis=1, keepdims=True)



def confident_at(q: np.ndarray, q_labels: list[str], c: np.ndarray, c_labels: list[str],
                 false_alarm: float = 0.05) -> float:
    """Share of true queries answered right *and* above the similarity that only `false_alarm` of
    the distractor queries (label "") reach: what any verdict threshold on similarity could call."""
    sims = q @ c.T
    best = sims.max(axis=1)
    top = [c_labels[j] for j in sims.argmax(axis=1)]
    distractor = np.array([lab == "" for lab in q_labels])
    if not distractor.any():
        return float("nan")
    cut = float(np.quantile(best[distractor], 1 - false_alarm))
    true = ~distractor
    right = np.array([t == lab for t, lab in zip(top, q_labels)])
    return float(np.mean((right & (best > cut))[true]))


def recall(q: np.ndarray, q_labels: list[str], c: np.ndarray, c_labels: list[str]) -> tuple[float, float]:
    sims = q @ c.T
    objects = sorted(set(c_labels))
    index = {o: i for i, o in enumerate(objects)}
    best = np.full((len(q), len(objects)), -np.inf)
    for j, o in enumerate(c_labels):  # an object scores by its best-matching catalogue photo
        best[:, index[o]] = np.maximum(best[:, index[o]], sims[:, j])
    order = np.argsort(-best, axis=1)
    ranks = [list(order[i]).index(index[lab]) + 1 if lab in index else 10**9 for i, lab in enumerate(q_labels)]
    r = np.asarray(ranks)
    return float(np.mean(r <= 1)), float(np.mean(r <= 5))


def write_map(path: Path, model: Model, alpha: float, rank: int, info: dict[str, object]) -> None:
    """The map as embed/adaptation.py applies it: y = c (x - mean) + ((x - mean) @ basis) * (scales - c) @ basis.T,
    i.e. the whitening restricted to the `rank` directions of largest within-object variance."""
    mean, evals, evecs = model
    target = float(evals.mean())
    c = 1.0 / np.sqrt(alpha * target)
    top = np.argsort(evals)[::-1][:rank]
    scales = 1.0 / np.sqrt((1 - alpha) * evals[top] + alpha * target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez_compressed(f, mean=mean.astype(np.float32), basis=evecs[:, top].astype(np.float16),
                            scales=(scales / c).astype(np.float32),
                            info=np.array(json.dumps({"alpha": alpha, "rank": rank, **info})))
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)", file=sys.stderr)


def leave_objects_out(vectors: np.ndarray, labels: np.ndarray, folds: int = 4) -> dict[str, float]:
    """R@1 of query views against catalogue views of held-out training objects, per alpha (plus centring, plain)."""
    objects = np.unique(labels)
    rng = np.random.default_rng(0)
    parts = np.array_split(rng.permutation(objects), folds)
    hits: dict[str, list[float]] = {}
    for part in parts:
        test = np.isin(labels, part)
        model = fit(vectors[~test], labels[~test])
        tv, tl = vectors[test], labels[test]
        first = np.zeros(len(tl), bool)
        for o in part:
            first[np.flatnonzero(tl == o)[0]] = True  # the catalogue view (rendered first)
        for name, m, a in [("plain", None, None), ("centred", model, None)] + [(f"alpha={a}", model, a) for a in ALPHAS]:
            y = adapt(m, a, tv)
            r1, _ = recall(y[~first], list(tl[~first]), y[first], list(tl[first]))
            hits.setdefault(name, []).append(r1)
    return {k: round(float(np.mean(v)), 4) for k, v in hits.items()}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/tmp/artefact-3d"), help="make_objects.py output")
    p.add_argument("--bench", type=Path, required=True, help="a `bench-build` folder of data/sample (queries.csv)")
    p.add_argument("--train", type=Path, default=Path("/tmp/artefact-3d-train"), help="where training renders go")
    p.add_argument("--train-objects", type=int, default=40, help="training objects per group (textured, plain)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ranks", default="0", help="comma list: low-rank variants of the chosen alpha (0 = full)")
    p.add_argument("--write-map", type=Path, default=None,
                   help="write the chosen alpha's map at rank --map-rank as the package's adaptation file "
                        "(embed/data/turned3d.npz; see embed/adaptation.py)")
    p.add_argument("--map-rank", type=int, default=64)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)

    objs = train_objects(a.train_objects)
    train_paths = render_training(objs, a.train, a.workers)
    embed = Embeddings()
    t_paths = [pp for o in objs for pp in train_paths[o.object_id]]
    t_labels = np.array([o.object_id for o in objs for _ in train_paths[o.object_id]])
    tv = embed(t_paths)
    cv = leave_objects_out(tv, t_labels)
    chosen = max((k for k in cv if k.startswith("alpha=")), key=lambda k: cv[k])
    print(f"leave-objects-out R@1 on training objects: {cv} -> {chosen}", file=sys.stderr)
    model = fit(tv, t_labels)
    if a.write_map:
        write_map(a.write_map, model, float(chosen.split("=")[1]), a.map_rank,
                  {"training_objects": len(objs), "training_views": len(t_paths), "leave_objects_out_r1": cv})

    # 3D benchmark: true queries only (R@1 is about finding the right object)
    q3_all = read_csv(a.data / "queries.csv")
    q3 = [r for r in q3_all if r["expected_id"]]
    q3v = embed([a.data / r["query"] for r in q3])
    q3_all_v = embed([a.data / r["query"] for r in q3_all])
    cat_ids = sorted({r["expected_id"] for r in q3})
    # recall benchmark: data/sample's catalogue photos, the bench folder's true queries
    sample = read_csv(SAMPLE / "catalogue.csv")
    s_paths, s_labels = [], []
    for row in sample:
        for ref in filter(None, (x.strip() for x in row["images"].replace("|", ";").split(";"))):
            where = SAMPLE / "images" / ref
            files = sorted(f for f in where.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png")) \
                if where.is_dir() else [where]  # a folder stands for every photo in it
            s_paths += files
            s_labels += [row["id"]] * len(files)
    sv = embed(s_paths)
    qs_all = read_csv(a.bench / "queries.csv")
    qs = [r for r in qs_all if r["expected_id"]]
    qsv = embed([a.bench / r["query"] for r in qs])
    qs_all_v = embed([a.bench / r["query"] for r in qs_all])

    variants = [("plain", None, None, 0), ("centred", model, None, 0)] + [(f"alpha={x}", model, x, 0) for x in ALPHAS]
    chosen_alpha = float(chosen.split("=")[1])
    variants += [(f"{chosen} rank {k}", model, chosen_alpha, k) for k in map(int, a.ranks.split(",")) if k]
    rows = []
    for name, m, alpha, rank in variants:
        row: dict[str, object] = {"variant": name, "chosen": name == chosen, "train_cv_r1": cv.get(name)}

        def apply(x: np.ndarray, m: Model | None = m, alpha: float | None = alpha, rank: int = rank) -> np.ndarray:
            return adapt(m, alpha, x, rank)

        y3 = apply(q3v)
        for n, views in VIEWS.items():
            c_paths = [a.data / "images" / o / f"{v}.png" for o in cat_ids for v in views]
            c_labels = [o for o in cat_ids for _ in views]
            r1, r5 = recall(y3, [r["expected_id"] for r in q3], apply(embed(c_paths)), c_labels)
            row[f"3d_{n}view_r1"], row[f"3d_{n}view_r5"] = round(r1, 4), round(r5, 4)
        for sub in ("textured", "plain"):
            keep = [i for i, r in enumerate(q3) if sub in r["condition"]]
            c_paths = [a.data / "images" / o / "c000.png" for o in cat_ids]
            r1, _ = recall(y3[keep], [q3[i]["expected_id"] for i in keep], apply(embed(c_paths)), cat_ids)
            row[f"3d_1view_{sub}_r1"] = round(r1, 4)
        c1 = [a.data / "images" / o / "c000.png" for o in cat_ids]
        row["3d_1view_confident_at_5pct_fa"] = round(confident_at(
            apply(q3_all_v), [r["expected_id"] for r in q3_all], apply(embed(c1)), cat_ids), 4)
        row["sample_confident_at_5pct_fa"] = round(confident_at(
            apply(qs_all_v), [r["expected_id"] for r in qs_all], apply(sv), s_labels), 4)
        ys = apply(qsv)
        r1, r5 = recall(ys, [r["expected_id"] for r in qs], apply(sv), s_labels)
        row["sample_r1"], row["sample_r5"] = round(r1, 4), round(r5, 4)
        conditions = sorted({r["condition"] for r in qs})
        row["sample_by_condition_r1"] = {
            c: round(recall(ys[[i for i, r in enumerate(qs) if r["condition"] == c]],
                            [r["expected_id"] for r in qs if r["condition"] == c],
                            apply(sv), s_labels)[0], 4) for c in conditions}
        rows.append(row)
        print(f"{name:<11} cv {row['train_cv_r1']!s:>6}  3D R@1 1/2/4 views {row['3d_1view_r1']:.3f} / "
              f"{row['3d_2view_r1']:.3f} / {row['3d_4view_r1']:.3f} (textured {row['3d_1view_textured_r1']:.3f}, "
              f"plain {row['3d_1view_plain_r1']:.3f})  recall benchmark R@1 {row['sample_r1']:.3f} R@5 {row['sample_r5']:.3f}"
              + f"  right and above 5% FA: 3D {row['3d_1view_confident_at_5pct_fa']:.3f}, "
              f"recall benchmark {row['sample_confident_at_5pct_fa']:.3f}"
              + ("  <- chosen by training CV" if row["chosen"] else ""), file=sys.stderr if a.json else sys.stdout)
    if a.json:
        print(json.dumps({"train_objects": len(objs), "train_views": len(t_paths), "chosen": chosen, "rows": rows},
                         indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
