"""Local-feature store: compact records (<= 16 KB) that still verify, append-only shards with an offset
log that survives torn writes, removal with the photo, migration of catalogue rows, and `check`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artefact.embed.models import ModelDescription
from artefact.index.features_store import LOG_ENTRY, FeatureStore, decode, encode
from artefact.index.library import Library
from artefact.index.records import ObjectRecord
from artefact.index.verification import Features, extract, verify_many


@pytest.fixture(scope="module")
def sift_pair(photo_image):
    """SIFT features of a real photo and of a rotated, rescaled, cropped copy of it."""
    img = photo_image("astronaut")
    other = img.rotate(12, resample=Image.Resampling.BICUBIC, expand=False).resize((420, 420)).crop((20, 30, 400, 410))
    return extract(img, "sift"), extract(other, "sift")


def random_features(rng: np.random.Generator, n: int = 300, kind: str = "sift") -> Features:
    dim = 128 if kind == "sift" else 32
    return Features(kind, rng.uniform(0, 639, (n, 2)).astype(np.float32),
                    rng.integers(0, 160, (n, dim)).astype(np.uint8), (640, 480))


def test_compact_record_is_small_and_close(sift_pair):
    full, _ = sift_pair
    assert len(full) > 300
    data = encode(full)
    assert len(data) <= 16 * 1024
    back = decode(data)
    n = len(back)
    assert back.kind == "sift" and back.size == full.size and n == min(len(full), 224)
    assert np.abs(back.xy - full.xy[:n]).max() <= 1 / 32 + 1e-6
    # Descriptors on the square-root scale RootSIFT compares: small error there.
    err = np.abs(np.sqrt(back.desc / 255.0) - np.sqrt(full.desc[:n] / 255.0)).max()
    assert err <= 0.5 / 15 + 0.005  # half a 4-bit step, plus rounding back to integer descriptor values
    orb = random_features(np.random.default_rng(1), 100, "orb")
    again = decode(encode(orb))
    np.testing.assert_array_equal(again.desc, orb.desc)  # binary descriptors are kept whole


def test_compact_features_still_verify_the_same_object(sift_pair, photo_image):
    query, cand = sift_pair
    unrelated = extract(photo_image("coffee"), "sift")
    full = verify_many(query, [cand, unrelated])
    compact = verify_many(query, [decode(encode(cand)), decode(encode(unrelated))])
    assert full[0].inliers >= 20
    assert compact[0].inliers >= max(12, full[0].inliers // 3)  # fewer keypoints, same verdict
    assert compact[1].inliers < 8


def test_store_round_trip_remove_and_reopen(tmp_path):
    rng = np.random.default_rng(2)
    store = FeatureStore(tmp_path / "f")
    feats = {i: random_features(rng) for i in (3, 7, 11, 400)}
    store.put_many(list(feats.items()))
    got = store.get_many([3, 7, 11, 400, 999])
    assert sorted(got) == [3, 7, 11, 400]
    np.testing.assert_allclose(got[7].xy, feats[7].xy[:224], atol=1 / 32)
    assert store.remove([7, 12345]) == 1
    store.put_many([(3, random_features(rng, 50))])  # a replacement wins over the first record
    other = FeatureStore(tmp_path / "f")  # another process opening the same folder
    assert sorted(other.ids().tolist()) == [3, 11, 400] and len(other.get_many([3])[3]) == 50
    store.put_many([(5, random_features(rng))])
    assert 5 not in other.ids() and other.refresh() == 1 and 5 in other.ids()
    stats = store.stats()
    assert stats["photos"] == 4 and stats["bytes_per_photo"] <= 16 * 1024
    freed = store.compact()
    assert freed > 0 and sorted(store.ids().tolist()) == [3, 5, 11, 400]
    assert other.refresh() >= 0 and sorted(other.ids().tolist()) == [3, 5, 11, 400]  # follows the new log
    np.testing.assert_array_equal(other.get_many([11])[11].desc, store.get_many([11])[11].desc)


def test_torn_writes_are_ignored(tmp_path):
    rng = np.random.default_rng(3)
    store = FeatureStore(tmp_path / "f")
    store.put_many([(1, random_features(rng)), (2, random_features(rng))])
    log = tmp_path / "f" / "offsets.log"
    shard = next((tmp_path / "f").glob("shard-*.bin"))
    # A crash: a log entry written for a record that never reached the shard, and half an entry.
    entry = np.zeros(1, LOG_ENTRY)
    entry[0] = (9, 1, shard.stat().st_size + 10, 500)
    with open(log, "ab") as f:
        f.write(entry.tobytes() + b"\x01\x02\x03")
    fresh = FeatureStore(tmp_path / "f")
    assert sorted(fresh.ids().tolist()) == [1, 2]
    fresh.put_many([(4, random_features(rng))])  # the torn tail is cut before appending
    assert sorted(FeatureStore(tmp_path / "f").ids().tolist()) == [1, 2, 4]


def fake_model() -> ModelDescription:
    return ModelDescription("test", "synthetic", None, 8, {"size": 8}, "synthetic-weights", False)


def test_catalogue_rows_migrate_on_first_open_and_check_sees_damage(tmp_path, sift_pair):
    full, other = sift_pair
    home = tmp_path / "home"
    lib = Library(home)
    lib.bind_model(fake_model())
    lib.vectors  # loaded (empty) before the rows are written, as ingest does
    ids = []
    with lib.catalogue.transaction():  # an installation from before the store: features as rows
        for o in range(3):
            pk, _ = lib.catalogue.upsert_object(ObjectRecord(f"O{o}", {}))
            i = lib.catalogue.add_image(pk, f"o{o}.jpg", f"s{o}", 1, 0, 8, 8, np.ones(8, np.float32))
            lib.catalogue.set_features(i, (full if o else other).to_row())
            ids.append(i)
    lib.add_vectors(np.asarray(ids, np.int64), np.ones((3, 8), np.float32))
    lib.mark_synced()
    lib.save()
    lib.close()
    db_rows = lambda l: l.catalogue.db.execute("SELECT count(*) FROM features").fetchone()[0]  # noqa: E731
    lib = Library(home)
    assert db_rows(lib) == 3
    assert lib.stats()["images_with_features"] == 3  # first use moves the rows
    assert db_rows(lib) == 0 and sorted(lib.features.ids().tolist()) == sorted(ids)
    got = lib.features_of(ids)
    assert len(got[ids[1]]) == 224 and verify_many(got[ids[0]], [got[ids[1]]])[0].inliers >= 12
    assert lib.check() == []
    lib.remove_object("O1")  # features go with their photo
    assert ids[1] not in lib.features.ids() and lib.check() == []
    shard = next((home / "features").glob("shard-*.bin"))
    with open(shard, "r+b") as f:  # damage: a record cut short
        f.truncate(shard.stat().st_size - 100)
    reopened = Library(home)
    problems = reopened.check()
    assert any("local-feature" in p for p in problems)
    reopened.close()
    lib.close()


def test_images_without_features_is_one_set_difference(tmp_path):
    lib = Library(tmp_path / "home")
    lib.bind_model(fake_model())
    with lib.catalogue.transaction():
        pk, _ = lib.catalogue.upsert_object(ObjectRecord("A", {}))
        ids = [lib.catalogue.add_image(pk, f"{n}.jpg", f"{n}", 1, 0, 8, 8, np.ones(8, np.float32)) for n in range(5)]
    lib.features.put_many([(ids[1], random_features(np.random.default_rng(0)))])
    assert lib.images_without_features().tolist() == [ids[0], *ids[2:]]
    lib.close()
