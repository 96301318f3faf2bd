"""Search: query vectors -> nearest images -> ranked objects, with filters applied inside FAISS."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from artefact.embed.images import DEFAULT_MAX_PIXELS, ImageSource
from artefact.embed.models import ModelDescription
from artefact.embed.preprocess import PreprocessConfig, load_photo
from artefact.index.calibration import NO_MATCH, POSSIBLE, STRONG_EVIDENCE, Calibration, margins
from artefact.index.catalogue import SearchFilters
from artefact.index.library import Library
from artefact.index.records import ImageRecord, ObjectRecord
from artefact.index.verification import Features, Verification, extract, verify_many

log = logging.getLogger(__name__)

IMAGE, TEXT = "image", "text"


class QueryEmbedder(Protocol):
    """What search needs from a model (satisfied by artefact.embed.embedder.Embedder)."""

    preprocess: PreprocessConfig
    description: ModelDescription  # checked against the index's own model before any search

    def embed_prepared(self, arrays: Sequence[np.ndarray]) -> np.ndarray: ...

    def embed_text(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class QueryHit:
    """Which query (photo n or text n) matched which catalogue photo, and how closely."""

    query: int
    kind: str
    image: ImageRecord
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "kind": self.kind, "score": round(self.score, 4), "image": self.image.to_dict()}


@dataclass
class Evidence:
    """The verified correspondences behind a match: query photo n vs one catalogue photo."""

    query: int
    image: ImageRecord
    verification: Verification


@dataclass
class ObjectMatch:
    """One ranked object. `score` is a cosine similarity (higher is closer);
    `inliers` the geometrically verified local matches (None when not re-ranked);
    `probability` the calibrated match probability (None when uncalibrated), which reads
    `margin`, the lead over the best other candidate (0 where the pool is too small to tell)."""

    record: ObjectRecord
    score: float
    best_image: ImageRecord
    hits: list[QueryHit] = field(default_factory=list)
    inliers: int | None = None
    probability: float | None = None
    margin: float = 0.0
    verdict: str = NO_MATCH
    evidence: Evidence | None = None

    @property
    def close(self) -> bool:
        return self.verdict != NO_MATCH

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": self.record.to_dict(),
            "score": round(self.score, 4),
            "inliers": self.inliers,
            "probability": None if self.probability is None else round(self.probability, 4),
            "margin": round(self.margin, 4),
            "verdict": self.verdict,
            "best_image": self.best_image.to_dict(),
            "hits": [h.to_dict() for h in self.hits],
        }


@dataclass
class SearchResult:
    """Ranked matches plus the decision: are any of them close enough to report?"""

    matches: list[ObjectMatch]
    threshold: float
    filters: SearchFilters
    timings_ms: dict[str, float] = field(default_factory=dict)
    calibration: Calibration | None = None
    reranked: bool = False
    strong_evidence: int = STRONG_EVIDENCE  # what `answer_order` was given (eval re-applies it)

    @property
    def close_matches(self) -> list[ObjectMatch]:
        return [m for m in self.matches if m.close]

    @property
    def no_match(self) -> bool:
        return not self.close_matches

    @property
    def verdict(self) -> str:
        """The answer in words: the best match's verdict."""
        return self.matches[0].verdict if self.matches else NO_MATCH

    def decision_rule(self) -> str:
        if self.calibration is not None:
            c = self.calibration
            return (f"calibrated: strong match at probability >= {c.strong:.3f} (held-out precision "
                    f"{c.precision.get('strong', 0):.2f}), possible match at >= {c.possible:.3f} "
                    f"(precision {c.precision.get('possible', 0):.2f})")
        return f"uncalibrated: possible match at similarity >= {self.threshold:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "decision_rule": self.decision_rule(),
            "threshold": self.threshold,
            "reranked": self.reranked,
            "filters": self.filters.to_dict(),
            "matches": [{**m.to_dict(), "close": m.close} for m in self.matches],
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


def _tie_at_edge(results: list[tuple[np.ndarray, np.ndarray]], info: dict[int, Any], k: int) -> bool:
    """Could an image just outside a query's window tie with that query's k-th object?"""
    for D, I in results:
        best: dict[int, float] = {}
        for d, i in zip(D, I):
            pk = info[int(i)][0] if int(i) in info else -int(i)
            best.setdefault(pk, float(d))
        if len(D) and len(best) >= k and float(D[-1]) >= sorted(best.values(), reverse=True)[k - 1] - 1e-6:
            return True
    return False


def search_vectors(
    library: Library,
    xq: np.ndarray,
    kinds: Sequence[str],
    *,
    k: int = 10,
    filters: SearchFilters = SearchFilters(),
) -> list[ObjectMatch]:
    """Rank objects for a set of query vectors of one object.

    Photos are fused by max (any one good view identifies the object); when text
    is given too, an object's score is the mean of its photo and text scores.
    """
    vectors = library.vectors
    if len(xq) == 0 or vectors.ntotal == 0 or k <= 0:
        return []
    # Filters (and the recovered exclusion) as an id bitmap from in-memory codes: no SQL per search.
    sel = library.selection(filters)
    allowed = vectors.ntotal if sel is None else min(sel.count, vectors.ntotal)
    k_img = max(4 * k, 32)
    while True:
        results = vectors.search(xq, k_img, selection=sel)
        cand = np.unique(np.concatenate([I for _, I in results])) if results else np.zeros(0, np.int64)
        info = library.catalogue.images_by_id(cand.tolist())
        # Many photos of a few objects can crowd the top, and ties can run past the
        # window's edge: widen until k objects are in and none could tie the k-th.
        if k_img >= allowed or (
            len({pk for pk, _ in info.values()}) >= k and not _tie_at_edge(results, info, k)
        ):
            break
        k_img *= 4
    if len(cand) == 0:
        return []
    cand = np.asarray([i for i in cand if int(i) in info], dtype=np.int64)
    S = xq @ vectors.reconstruct(cand).T  # exact similarity of every query to every candidate
    kinds_arr = np.asarray(kinds)
    pk_of = np.asarray([info[int(i)][0] for i in cand])
    per_object: list[tuple[float, int, list[QueryHit]]] = []
    for pk in np.unique(pk_of):
        cols = np.nonzero(pk_of == pk)[0]
        hits, kind_scores = [], []
        for kind in (IMAGE, TEXT):
            rows = np.nonzero(kinds_arr == kind)[0]
            if len(rows) == 0:
                continue
            sub = S[np.ix_(rows, cols)]
            kind_scores.append(float(sub.max()))
            for r, q in enumerate(rows):
                c = int(cols[int(np.argmax(sub[r]))])
                hits.append(QueryHit(int(q), kind, info[int(cand[c])][1], float(S[q, c])))
        per_object.append((float(np.mean(kind_scores)), int(pk), hits))
    records = library.catalogue.objects_by_pk([pk for _, pk, _ in per_object])
    per_object.sort(key=lambda t: (-t[0], records[t[1]].object_id))
    matches = []
    for score, pk, hits in per_object[:k]:
        best = max(hits, key=lambda h: h.score).image
        matches.append(ObjectMatch(records[pk], score, best, hits))
    return matches


DEFAULT_RERANK = 20  # candidates whose photos get the geometric second look
PHOTOS_PER_CANDIDATE = 3


def search(
    library: Library,
    embedder: QueryEmbedder,
    photos: Sequence[ImageSource] = (),
    text: Sequence[str] = (),
    *,
    k: int = 10,
    filters: SearchFilters = SearchFilters(),
    threshold: float | None = None,
    rerank: int = DEFAULT_RERANK,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
    strong_evidence: int = STRONG_EVIDENCE,
    query_flip: bool = False,
) -> SearchResult:
    """Search with one or several photos of one object and/or a text description.

    Args:
        rerank: how many top candidates get geometric verification (0 = off).
        threshold: a similarity cut-off that overrides calibrated verdicts.
        strong_evidence: verified correspondences below which verification may not
            lift a candidate over a more similar one (0 = any verification may).
        query_flip: test-time view: each query photo's vector is the mean of the
            photo's and its mirror image's (measured in benchmarks/three_d; off by default).

    Raises:
        ImageDecodeError, ImageTooLargeError: an unusable photo.
        ModelUnavailableError: text given but the model has no text tower.
        IndexMismatchError: the embedder is not the model that built the index.
    """
    if not photos and not text:
        raise ValueError("give at least one photo or a text query")
    # Notebooks call this directly: vectors of another model would rank by noise, silently.
    library.check_model(embedder.description)
    t0 = time.perf_counter()
    decoded = [load_photo(p, embedder.preprocess, max_pixels=max_pixels, max_bytes=max_bytes) for p in photos]
    t1 = time.perf_counter()
    kind = library.local_features if rerank > 0 and decoded else None
    # The second look needs the query's local features (SIFT: ~75 ms a photo): extracted on worker
    # threads while the model embeds and the index searches. OpenCV, ONNX Runtime and FAISS release
    # the GIL, so on two cores the extraction costs little or no wall time (benchmarks/bench_query.py).
    query_images: list[Any] = ([_feature_pool().submit(extract, img, kind) for img, _ in decoded] if kind
                               else [img for img, _ in decoded])
    xq, kinds = embed_queries(embedder, [arr for _, arr in decoded], text, flip=query_flip)
    t2 = time.perf_counter()
    return rank(library, xq, kinds, query_images, k=k, filters=filters, threshold=threshold,
                rerank=rerank, timings={"decode": (t1 - t0) * 1e3, "embed": (t2 - t1) * 1e3},
                strong_evidence=strong_evidence)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _feature_pool() -> ThreadPoolExecutor:
    """Threads that extract query photos' local features beside the embedding (one per core)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="query-features")
        return _POOL


def embed_queries(embedder: QueryEmbedder, arrays: Sequence[np.ndarray], text: Sequence[str],
                  flip: bool = False) -> tuple[np.ndarray, list[str]]:
    """Query vectors (photos first, then texts) and their kinds; `flip` averages each photo with its mirror."""
    parts, kinds = [], []
    if len(arrays):
        if flip:  # one model batch: the photos, then their mirror images (HxWx3: flip the width axis)
            x = embedder.embed_prepared([*arrays, *(np.ascontiguousarray(a[:, ::-1]) for a in arrays)])
            x = x[: len(arrays)] + x[len(arrays) :]
            parts.append(x / np.linalg.norm(x, axis=1, keepdims=True))
        else:
            parts.append(embedder.embed_prepared(arrays))
        kinds += [IMAGE] * len(arrays)
    if text:
        parts.append(embedder.embed_text(list(text)))
        kinds += [TEXT] * len(text)
    return np.vstack(parts).astype(np.float32), kinds


# Margins are read only where the search found at least this many candidate objects: in a catalogue
# (or a filtered search) of a handful of objects, the best of three unrelated ones can stand far
# above the next by chance. The built-in fits saw 60+ objects; smaller pools read similarity alone.
MARGIN_POOL = 20


def rank(
    library: Library,
    xq: np.ndarray,
    kinds: Sequence[str],
    query_images: Sequence[Any] = (),  # PIL images, their precomputed Features, or Futures of Features
    *,
    k: int = 10,
    filters: SearchFilters = SearchFilters(),
    threshold: float | None = None,
    rerank: int = DEFAULT_RERANK,
    timings: dict[str, float] | None = None,
    strong_evidence: int = STRONG_EVIDENCE,
) -> SearchResult:
    """Embedding search, optional geometric re-ranking of the top candidates, then verdicts
    (weak verification never overrides a better embedding order: `hold_weak_evidence`)."""
    timings = dict(timings or {})
    t0 = time.perf_counter()
    kind = library.local_features if rerank > 0 and query_images else None
    # a verdict reads how far each answer stands above the best other one, whatever k: fetch the pool
    matches = search_vectors(library, xq, kinds, k=max(k, rerank if kind else 0, MARGIN_POOL), filters=filters)
    if len(matches) >= MARGIN_POOL:
        for m, lead in zip(matches, margins([c.score for c in matches])):
            m.margin = lead
    t1 = time.perf_counter()
    timings["search"] = (t1 - t0) * 1e3
    if kind:
        query_feats = [q.result() if isinstance(q, Future) else q if isinstance(q, Features) else extract(q, kind)
                       for q in query_images]
        verify_matches(library, query_feats, matches[:rerank])
        timings["rerank"] = (time.perf_counter() - t1) * 1e3
    calibration = None if threshold is not None else library.calibration(uses_inliers=bool(kind))
    if threshold is None:
        threshold = default_threshold(library.model)
    if calibration is not None:
        for m in matches:
            m.probability = calibration.probability(m.score, m.inliers, m.margin)
        hold_weak_evidence(matches, strong_evidence)
    for m in matches:
        if calibration is not None:
            m.verdict = calibration.verdict(m.probability or 0.0)
        else:
            m.verdict = POSSIBLE if m.score >= threshold else NO_MATCH
    matches = answer_order(matches, calibration, bool(kind), strong_evidence)
    return SearchResult(matches[:k], threshold, filters, timings, calibration, bool(kind), strong_evidence)


def hold_weak_evidence(matches: Sequence[ObjectMatch], strong: int = STRONG_EVIDENCE) -> None:
    """Weak verification never overrides a better embedding order.

    A candidate verified with fewer than `strong` correspondences may not pass one
    that is more similar: its probability is capped at the lowest probability of
    every more similar candidate, and `answer_order` breaks that tie by similarity.
    Strong evidence (or none sought) leaves the probability as calibrated.
    """
    floor = float("inf")
    for m in sorted(matches, key=lambda m: (-m.score, m.record.object_id)):  # embedding order
        if m.probability is None:
            continue
        if m.inliers is not None and m.inliers < strong and m.probability > floor:
            m.probability = floor
        floor = min(floor, m.probability)


def answer_order(matches: Sequence[ObjectMatch], calibration: Calibration | None, reranked: bool,
                 strong_evidence: int = STRONG_EVIDENCE) -> list[ObjectMatch]:
    """The order the service answers in: the one ordering shared by search and `artefact eval`.

    Calibrated: by probability; many unverified candidates share the calibration's
    floor probability, and among them (and any other tie) similarity leads, then the
    object id. Uncalibrated and re-ranked: verified matches break ties between
    look-alikes, similarity leads. Otherwise the embedding order stands.
    """
    if calibration is not None:
        return sorted(matches, key=lambda m: (-(m.probability or 0.0), -m.score, m.record.object_id))
    if reranked:
        # Weak evidence (fewer than STRONG_EVIDENCE correspondences) adds nothing here either.
        return sorted(matches, key=lambda m: (-(m.score + 0.05 * np.log1p(_strong_inliers(m, strong_evidence))),
                                              m.record.object_id))
    return list(matches)


def _strong_inliers(m: ObjectMatch, strong: int) -> int:
    return m.inliers if m.inliers is not None and m.inliers >= strong else 0


def verify_matches(library: Library, query_feats: Sequence[Features], matches: Sequence[ObjectMatch]) -> None:
    """Set each match's inliers (best over query photos x its photos) and keep the evidence."""
    if not matches or not query_feats:
        return
    per_match: list[list[ImageRecord]] = []
    for m in matches:
        seen = {h.image.image_id: h.image for h in m.hits if h.kind == IMAGE}
        for img in library.catalogue.object_images(m.record.object_id):
            if len(seen) >= PHOTOS_PER_CANDIDATE:
                break
            seen.setdefault(img.image_id, img)
        per_match.append(list(seen.values())[:PHOTOS_PER_CANDIDATE])
    ids = [i.image_id for imgs in per_match for i in imgs]
    cand_feats = library.features_of(ids)
    flat = [(mi, img) for mi, imgs in enumerate(per_match) for img in imgs if img.image_id in cand_feats]
    for m in matches:
        m.inliers = 0
    for qi, qf in enumerate(query_feats):
        results = verify_many(qf, [cand_feats[img.image_id] for _, img in flat])
        for (mi, img), v in zip(flat, results):
            m = matches[mi]
            if v.inliers > (m.inliers or 0):
                m.inliers = v.inliers
                m.evidence = Evidence(qi, img, v)


# Provisional decision thresholds on cosine similarity, until calibrated per index.
# EfficientNet-Lite0 (GeM): on the bundled sample, true matches of the painting and
# temple queries score 0.62 and 0.81, the unrelated cat photo at most 0.27.
# The CLIP value is NOT measured here (no CLIP weights on this machine): a placeholder.
DEFAULT_THRESHOLDS = {"efficientnet_lite0": 0.5, "open_clip": 0.8}


def default_threshold(model: Any) -> float:
    """The provisional 'close match' threshold for a model description."""
    return DEFAULT_THRESHOLDS.get(getattr(model, "backend", ""), 0.8)
