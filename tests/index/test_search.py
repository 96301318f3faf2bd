"""Search: filters applied inside the vector search, status handling, multi-photo fusion, ties,
and retrieval quality with the real offline weights on the bundled sample; every library test
runs on each vector store (FAISS files and Milvus Lite: the `vector_store` fixture)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artefact.embed.models import ModelDescription
from artefact.index.catalogue import SearchFilters
from artefact.index.ingest import ingest_manifest
from artefact.index.library import Library
from artefact.index.records import ObjectRecord
from artefact.index.search import IMAGE, search, search_vectors

from index_helpers import SAMPLE_CSV, SAMPLE_IMAGES, SAMPLE_QUERIES, use_vector_store

DIM = 16


def fake_model(dim: int = DIM) -> ModelDescription:
    return ModelDescription("test", "synthetic", None, dim, {"size": 8}, "synthetic-weights", False)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def build(home: Path, objects: list[tuple[str, dict[str, str], np.ndarray]], dim: int = DIM,
          store: str = "faiss") -> Library:
    """A library from (object_id, fields, vectors of its photos), written the way ingest does, on that vector store."""
    use_vector_store(home, store)
    lib = Library(home)
    lib.bind_model(fake_model(dim))
    lib.vectors  # load (empty) before writing, as ingest does: the catalogue rows are added to it below
    ids, vecs = [], []
    cat = lib.catalogue
    with cat.transaction():
        for oid, fields, mat in objects:
            pk, _ = cat.upsert_object(ObjectRecord(oid, fields))
            for n, v in enumerate(np.atleast_2d(mat)):
                ids.append(cat.add_image(pk, f"{oid}/{n}.jpg", f"{oid}-{n}", 1, 0, 8, 8, v))
                vecs.append(v)
    lib.add_vectors(np.asarray(ids, np.int64), np.asarray(vecs, np.float32))
    lib.save()
    return lib


def brute_force(objects, q: np.ndarray, allowed, k: int) -> list[tuple[str, float]]:
    """True top-k objects among `allowed(fields)`: score = best photo, ties by object id."""
    scored = [
        (float((np.atleast_2d(mat) @ q).max()), oid) for oid, fields, mat in objects if allowed(fields)
    ]
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [(oid, s) for s, oid in scored[:k]]


def assert_same_ranking(matches, expected) -> None:
    assert [m.record.object_id for m in matches] == [oid for oid, _ in expected]
    np.testing.assert_allclose([m.score for m in matches], [s for _, s in expected], atol=1e-5)


# ----------------------------------------------------------------------------- big synthetic library

N_OBJECTS = 2000
N_BLOCKERS = 500


@pytest.fixture(scope="module")
def big(tmp_path_factory, vector_store):
    """2000 objects; the 500 closest to the query are all of country 'Atlantis' (a third of them recovered)."""
    rng = np.random.default_rng(20240607)
    q = unit(rng.standard_normal(DIM))
    base = unit(rng.standard_normal((N_OBJECTS, DIM)))
    # Pull a block of objects towards q so that the nearest ones are clearly separated.
    base[:N_BLOCKERS] = unit(base[:N_BLOCKERS] * 0.3 + q)
    order = np.argsort(-(base @ q))
    objects = []
    countries = ["Italy", "Greece", "France", "Iraq"]
    statuses = ["stolen", "looted", "missing"]
    for rank, i in enumerate(order):
        if rank < N_BLOCKERS:
            fields = {"country": "Atlantis", "status": "recovered" if rank % 3 == 0 else "stolen", "object_type": "coin"}
        else:
            fields = {
                "country": countries[rank % 4],
                "status": "recovered" if rank % 10 == 0 else statuses[rank % 3],
                "object_type": "coin" if rank % 2 else "vase",
                "source": "ICOM" if rank % 5 == 2 else "police",
            }
        vecs = base[i][None]
        if rank % 7 == 0:  # some objects have a second, unrelated photo
            vecs = np.vstack([vecs, unit(rng.standard_normal(DIM))[None]])
        objects.append((f"OBJ-{int(i):05d}", fields, vecs.astype(np.float32)))
    lib = build(tmp_path_factory.mktemp("big") / "home", objects, store=vector_store)
    yield lib, objects, q
    lib.close()


def test_big_library_is_consistent(big):
    lib, objects, q = big
    assert lib.catalogue.counts()["objects"] == N_OBJECTS
    assert lib.vectors.ntotal == sum(len(m) for _, _, m in objects)
    assert lib.check() == []
    # The premise: the unrestricted top 500 are all Atlantis.
    top = brute_force(objects, q, lambda f: True, N_BLOCKERS)
    by_id = {oid: f for oid, f, _ in objects}
    assert all(by_id[oid]["country"] == "Atlantis" for oid, _ in top)


@pytest.mark.parametrize(
    "filters, allowed",
    [
        (SearchFilters(country=("Italy",)), lambda f: f["country"] == "Italy" and f["status"] != "recovered"),
        (SearchFilters(country=("GREECE", "iraq")), lambda f: f["country"] in ("Greece", "Iraq") and f["status"] != "recovered"),
        (SearchFilters(country=("France",), status=("looted",)), lambda f: f["country"] == "France" and f["status"] == "looted"),
        (SearchFilters(object_type=("vase",), source=("icom",)), lambda f: f.get("object_type") == "vase" and f.get("source") == "ICOM" and f["status"] != "recovered"),
        (SearchFilters(status=("missing", "looted")), lambda f: f["status"] in ("missing", "looted")),
    ],
    ids=["country", "two-countries-any-case", "country+status", "type+source", "two-statuses"],
)
@pytest.mark.parametrize("k", [1, 10, 50])
def test_filters_applied_inside_search(big, filters, allowed, k):
    lib, objects, q = big
    matches = search_vectors(lib, q[None], [IMAGE], k=k, filters=filters)
    assert len(matches) == k, "a filtered search must still return k results"
    for m in matches:
        assert allowed(m.record.fields), f"{m.record.object_id} {m.record.fields} breaks {filters}"
        assert m.best_image.object_id == m.record.object_id
    assert_same_ranking(matches, brute_force(objects, q, allowed, k))


def test_default_search_excludes_recovered(big):
    lib, objects, q = big
    matches = search_vectors(lib, q[None], [IMAGE], k=30)
    assert len(matches) == 30
    assert all(m.record.fields["status"] != "recovered" for m in matches)
    assert_same_ranking(matches, brute_force(objects, q, lambda f: f["status"] != "recovered", 30))


def test_recovered_included_on_request(big):
    lib, objects, q = big
    everything = search_vectors(lib, q[None], [IMAGE], k=30, filters=SearchFilters(include_recovered=True))
    assert_same_ranking(everything, brute_force(objects, q, lambda f: True, 30))
    assert any(m.record.fields["status"] == "recovered" for m in everything)
    only = search_vectors(lib, q[None], [IMAGE], k=30, filters=SearchFilters(status=("recovered",)))
    assert len(only) == 30 and all(m.record.fields["status"] == "recovered" for m in only)
    assert_same_ranking(only, brute_force(objects, q, lambda f: f["status"] == "recovered", 30))


def test_filter_matching_nothing_returns_nothing(big):
    lib, _, q = big
    assert search_vectors(lib, q[None], [IMAGE], k=10, filters=SearchFilters(country=("Narnia",))) == []


# ----------------------------------------------------------------------------- small hand-built libraries


def basis(i: int) -> np.ndarray:
    e = np.zeros(DIM, np.float32)
    e[i] = 1.0
    return e


def test_status_change_takes_effect_without_reindexing(tmp_path, vector_store):
    objects = [(f"S-{i}", {"status": "stolen"}, unit(basis(0) + 0.1 * (i + 1) * basis(1))[None]) for i in range(5)]
    with build(tmp_path / "home", objects, store=vector_store) as lib:
        q = basis(0)[None]
        assert search_vectors(lib, q, [IMAGE], k=1)[0].record.object_id == "S-0"
        lib.set_status("S-0", "recovered")
        assert [m.record.object_id for m in search_vectors(lib, q, [IMAGE], k=10)] == ["S-1", "S-2", "S-3", "S-4"]
        got = search_vectors(lib, q, [IMAGE], k=10, filters=SearchFilters(include_recovered=True))
        assert got[0].record.object_id == "S-0" and len(got) == 5
        got = search_vectors(lib, q, [IMAGE], k=10, filters=SearchFilters(status=("recovered",)))
        assert [m.record.object_id for m in got] == ["S-0"]
        lib.set_status("S-0", "stolen")
        assert search_vectors(lib, q, [IMAGE], k=1)[0].record.object_id == "S-0"


def test_removed_object_disappears_from_results(tmp_path, vector_store):
    objects = [(f"R-{i}", {}, unit(basis(0) + 0.1 * (i + 1) * basis(1))[None]) for i in range(4)]
    with build(tmp_path / "home", objects, store=vector_store) as lib:
        assert lib.remove_object("R-0") == 1
        assert [m.record.object_id for m in search_vectors(lib, basis(0)[None], [IMAGE], k=10)] == ["R-1", "R-2", "R-3"]
        assert lib.check() == []
    with Library(tmp_path / "home") as lib:  # and after reopening from the saved files
        assert [m.record.object_id for m in search_vectors(lib, basis(0)[None], [IMAGE], k=10)] == ["R-1", "R-2", "R-3"]
        assert lib.check() == []


@pytest.fixture
def fusion(tmp_path, vector_store):
    a1, a2 = basis(0), basis(1)  # two views of object A
    objects = [
        ("A", {}, np.vstack([a1, a2])),
        ("B", {}, unit(0.6 * basis(0) + 0.6 * basis(1) + 0.5 * basis(2))[None]),
        ("C", {}, unit(basis(3) + 0.2 * basis(0))[None]),
        ("D", {}, unit(basis(4) + 0.2 * basis(1))[None]),
    ]
    with build(tmp_path / "home", objects, store=vector_store) as lib:
        yield lib


def test_several_query_photos_fuse_into_one_ranking(fusion):
    lib = fusion
    q_front = unit(basis(0) + 0.1 * basis(5))  # close to A's first photo
    q_back = unit(basis(1) + 0.1 * basis(6))  # close to A's second photo
    matches = search_vectors(lib, np.vstack([q_front, q_back]), [IMAGE, IMAGE], k=10)
    ids = [m.record.object_id for m in matches]
    assert ids[0] == "A" and sorted(ids) == ["A", "B", "C", "D"], "one entry per object"
    a = matches[0]
    img_ids = {im.path: im.image_id for im in lib.catalogue.object_images("A")}
    hits = {h.query: h for h in a.hits}
    assert set(hits) == {0, 1} and all(h.kind == IMAGE for h in a.hits)
    assert hits[0].image.path == "A/0.jpg" and hits[0].image.image_id == img_ids["A/0.jpg"]
    assert hits[1].image.path == "A/1.jpg" and hits[1].image.image_id == img_ids["A/1.jpg"]
    np.testing.assert_allclose(hits[0].score, float(q_front @ basis(0)), atol=1e-6)
    np.testing.assert_allclose(a.score, max(h.score for h in a.hits), atol=1e-6)
    assert a.best_image.path == "A/0.jpg" or a.best_image.path == "A/1.jpg"
    assert a.best_image.image_id == max(a.hits, key=lambda h: h.score).image.image_id
    # Scores are sorted.
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


def test_object_matched_by_either_photo_ranks_first(fusion):
    lib = fusion
    q_good = unit(basis(1) + 0.05 * basis(7))  # matches A's second photo only
    q_poor = unit(np.ones(DIM) * np.r_[np.zeros(8), np.ones(8)])  # near nothing in the catalogue
    for xq in (np.vstack([q_poor, q_good]), np.vstack([q_good, q_poor])):
        matches = search_vectors(lib, xq, [IMAGE, IMAGE], k=4)
        assert matches[0].record.object_id == "A"
        good_row = 1 if xq[1] @ basis(1) > 0.9 else 0
        best = max(matches[0].hits, key=lambda h: h.score)
        assert best.query == good_row and best.image.path == "A/1.jpg"
        assert matches[0].score == pytest.approx(float(q_good @ basis(1)), abs=1e-6)


def test_many_photos_of_one_object_do_not_crowd_out_others(tmp_path, vector_store):
    rng = np.random.default_rng(5)
    crowd = unit(basis(0) + 0.01 * rng.standard_normal((120, DIM)))  # 120 near-identical photos
    others = [(f"O-{i:02d}", {}, unit(basis(0) * 0.5 + rng.standard_normal(DIM) * 0.3)[None]) for i in range(30)]
    objects = [("CROWD", {}, crowd)] + others
    with build(tmp_path / "home", objects, store=vector_store) as lib:
        matches = search_vectors(lib, basis(0)[None], [IMAGE], k=8)
        assert len(matches) == 8 and len({m.record.object_id for m in matches}) == 8
        assert matches[0].record.object_id == "CROWD"
        assert_same_ranking(matches, brute_force(objects, basis(0), lambda f: True, 8))


def test_k_larger_than_catalogue_returns_all_objects(tmp_path, vector_store):
    rng = np.random.default_rng(11)
    objects = [
        (f"K-{i:02d}", {"status": "recovered" if i in (3, 7) else "stolen"}, unit(rng.standard_normal((1 + i % 3, DIM))))
        for i in range(25)
    ]
    with build(tmp_path / "home", objects, store=vector_store) as lib:
        q = unit(rng.standard_normal(DIM))[None]
        got = search_vectors(lib, q, [IMAGE], k=1000)
        assert len(got) == 23 and len({m.record.object_id for m in got}) == 23
        assert_same_ranking(got, brute_force(objects, q[0], lambda f: f["status"] != "recovered", 1000))
        got = search_vectors(lib, q, [IMAGE], k=1000, filters=SearchFilters(include_recovered=True))
        assert len(got) == 25
        assert search_vectors(lib, q, [IMAGE], k=0) == []


def test_ties_ordered_deterministically_by_object_id(tmp_path, vector_store):
    # Identical photos (score exactly 1.0), inserted in reverse id order so image ids disagree with object ids.
    names = [f"T-{i:02d}" for i in range(12)][::-1]
    objects = [(n, {}, basis(0)[None]) for n in names] + [("Z-lower", {}, unit(basis(0) + basis(1))[None])]
    with build(tmp_path / "home", objects, store=vector_store) as lib:
        first = search_vectors(lib, basis(0)[None], [IMAGE], k=5)
        assert [m.record.object_id for m in first] == ["T-00", "T-01", "T-02", "T-03", "T-04"]
        assert all(m.score == pytest.approx(1.0) for m in first)
        for _ in range(3):
            assert [m.record.object_id for m in search_vectors(lib, basis(0)[None], [IMAGE], k=5)] == [
                m.record.object_id for m in first
            ]
        everything = search_vectors(lib, basis(0)[None], [IMAGE], k=20)
        assert [m.record.object_id for m in everything] == sorted(names) + ["Z-lower"]
    with Library(tmp_path / "home") as lib:
        again = search_vectors(lib, basis(0)[None], [IMAGE], k=5)
        assert [m.record.object_id for m in again] == [m.record.object_id for m in first]


def test_ties_beyond_the_candidate_window_still_ordered_by_object_id(tmp_path, vector_store):
    """Many objects sharing one photo (e.g. a placeholder picture): more ties than the image
    candidates fetched (max(4k, 32)); the documented tie order (object id) must still hold."""
    names = [f"P-{i:03d}" for i in range(100)][::-1]
    objects = [(n, {}, basis(0)[None]) for n in names]
    with build(tmp_path / "home", objects, store=vector_store) as lib:
        got = [m.record.object_id for m in search_vectors(lib, basis(0)[None], [IMAGE], k=5)]
        assert got == ["P-000", "P-001", "P-002", "P-003", "P-004"]


# ----------------------------------------------------------------------------- real weights, real photos


@pytest.fixture(scope="module")
def sample_library(tmp_path_factory, offline_embedder, vector_store):
    home = tmp_path_factory.mktemp("sample") / "home"
    use_vector_store(home, vector_store)
    lib = Library(home)
    rep = ingest_manifest(lib, offline_embedder, SAMPLE_CSV, SAMPLE_IMAGES, workers=0, progress=False)
    assert rep.images_added == 33 and rep.images_failed == 0
    yield lib
    lib.close()


def _jpeg(img: Image.Image, quality: int = 92, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    kw = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    img.save(buf, "JPEG", quality=quality, **kw)
    return buf.getvalue()


def variants(path: Path) -> dict[str, bytes]:
    """Query photos made from a catalogue photo."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    dw, dh = round(w * 0.075), round(h * 0.075)
    crop = img.crop((dw, dh, w - dw, h - dh))  # ~85 % of each side
    return {
        # Stored sideways; only the EXIF tag makes them upright.
        "exif6": _jpeg(img.transpose(Image.Transpose.ROTATE_90), orientation=6),
        "exif8": _jpeg(img.transpose(Image.Transpose.ROTATE_270), orientation=8),
        "q50": _jpeg(img, quality=50),
        "crop85": _jpeg(crop),
    }


QUALITY_PHOTOS = [
    "SMP-PAINT-01/1.jpg",
    "SMP-ARCH-01/1.jpg",
    # Coins with a second catalogue photo, and the coin of the sample's query photo.
    "SMP-COIN-03/1.jpg",
    "SMP-COIN-14/1.jpg",
    "SMP-COIN-18/1.jpg",
]


@pytest.fixture(scope="module")
def quality_queries(offline_embedder):
    names, blobs = [], []
    for rel in QUALITY_PHOTOS:
        oid = rel.split("/")[0]
        for kind, data in variants(SAMPLE_IMAGES / rel).items():
            names.append((oid, kind))
            blobs.append(data)
    # All three changes at once, for the two large photos.
    for rel in QUALITY_PHOTOS[:2]:
        img = Image.open(SAMPLE_IMAGES / rel).convert("RGB")
        w, h = img.size
        both = img.crop((round(w * 0.075), round(h * 0.075), round(w * 0.925), round(h * 0.925)))
        names.append((rel.split("/")[0], "crop85+q50+exif6"))
        blobs.append(_jpeg(both.transpose(Image.Transpose.ROTATE_90), quality=50, orientation=6))
    xq = offline_embedder.embed_images(blobs)
    return names, xq


def test_sideways_exif_query_decodes_upright():
    data = variants(SAMPLE_IMAGES / "SMP-PAINT-01" / "1.jpg")["exif6"]
    stored = Image.open(io.BytesIO(data))
    assert stored.size == (409, 512)  # stored sideways
    from artefact.embed.images import load_image

    assert load_image(data).size == (512, 409)


def test_transformed_catalogue_photos_find_their_own_object(sample_library, quality_queries):
    names, xq = quality_queries
    failures = []
    for (oid, kind), v in zip(names, xq):
        matches = search_vectors(sample_library, v[None], [IMAGE], k=3, filters=SearchFilters(include_recovered=True))
        if matches[0].record.object_id != oid:
            failures.append(f"{oid} {kind}: got {[(m.record.object_id, round(m.score, 3)) for m in matches]}")
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def sample_queries(offline_embedder) -> dict[str, np.ndarray]:
    """The bundled query photos (painting, partial temple, unrelated cat), embedded once."""
    names = ["query-painting-SMP-PAINT-01.jpg", "query-partial-SMP-ARCH-01.jpg", "query-unrelated-chelsea-cat.jpg"]
    xq = offline_embedder.embed_images([SAMPLE_QUERIES / n for n in names])
    return dict(zip(names, xq))


def test_unrelated_photo_scores_below_every_true_match(sample_library, quality_queries, sample_queries):
    names, xq = quality_queries
    filters = SearchFilters(include_recovered=True)
    cat = search_vectors(sample_library, sample_queries["query-unrelated-chelsea-cat.jpg"][None], [IMAGE], k=1, filters=filters)
    cat_best = cat[0].score
    true_scores = {}
    for (oid, kind), v in zip(names, xq):
        m = search_vectors(sample_library, v[None], [IMAGE], k=40, filters=filters)
        true_scores[(oid, kind)] = next(x.score for x in m if x.record.object_id == oid)
    for q, expected in (("query-painting-SMP-PAINT-01.jpg", "SMP-PAINT-01"), ("query-partial-SMP-ARCH-01.jpg", "SMP-ARCH-01")):
        m = search_vectors(sample_library, sample_queries[q][None], [IMAGE], k=3, filters=filters)
        assert m[0].record.object_id == expected, f"{q}: {[(x.record.object_id, x.score) for x in m]}"
        true_scores[(expected, q)] = m[0].score
    low = {key: s for key, s in true_scores.items() if s <= cat_best}
    assert not low, f"unrelated cat scores {cat_best:.3f}, above these true matches: {low}"


def test_real_search_end_to_end_respects_filters(sample_library, offline_embedder, sample_queries):
    q = SAMPLE_QUERIES / "query-painting-SMP-PAINT-01.jpg"
    res = search(sample_library, offline_embedder, [q], k=5, filters=SearchFilters(country=("italy",)))
    assert len(res.matches) == 5
    assert all(m.record.fields["country"] == "Italy" and m.record.fields["status"] != "recovered" for m in res.matches)
    assert set(res.timings_ms) >= {"decode", "embed", "search"}
    # The painting's own record is French: unfiltered, it is first.
    m = search_vectors(sample_library, sample_queries[q.name][None], [IMAGE], k=5)
    assert m[0].record.object_id == "SMP-PAINT-01"
    assert all(x.record.fields["status"] != "recovered" for x in m)


def test_two_query_photos_of_the_temple(sample_library, quality_queries, sample_queries):
    """A partial view plus a recompressed whole view: the temple first, hits name both photos."""
    names, xq = quality_queries
    whole = xq[names.index(("SMP-ARCH-01", "q50"))]
    partial = sample_queries["query-partial-SMP-ARCH-01.jpg"]
    matches = search_vectors(sample_library, np.vstack([partial, whole]), [IMAGE, IMAGE], k=3)
    top = matches[0]
    assert top.record.object_id == "SMP-ARCH-01"
    hits = {h.query: h for h in top.hits}
    assert set(hits) == {0, 1}
    assert Path(hits[1].image.path).name == "1.jpg" and hits[1].score > 0.9
    assert all(h.image.object_id == "SMP-ARCH-01" for h in top.hits)
