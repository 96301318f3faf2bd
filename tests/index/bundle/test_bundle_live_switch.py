"""Import while a Library answers searches on another thread: every answer is wholly old or wholly new."""

from __future__ import annotations

import threading
import time

import pytest

from artefact.index.bundle import export_bundle, import_bundle
from artefact.index.library import Library

from bundle_helpers import answers, read_queries

QUERY_NAMES = ("query-coin-SMP-COIN-18.jpg", "query-painting-SMP-PAINT-01.jpg")


def queries():
    return [q for q in read_queries() if q.name in QUERY_NAMES]


def change_what_the_queries_find(issuer) -> None:
    """The coin the first query finds is removed, the painting the second finds is recovered."""
    with Library(issuer) as library, library.writing():
        library.remove_object("SMP-COIN-18")
        library.set_status("SMP-PAINT-01", "recovered")


@pytest.mark.parametrize("kind", ["full", "delta"])
def test_searches_during_an_import_get_old_or_new_answers_never_a_mix(
    issuer, new_post, agency_key, offline_embedder, offline_model_here, tmp_path, kind
):
    key = agency_key.private_path
    post, reference = new_post("post"), new_post("reference")
    first = export_bundle(issuer, tmp_path / "B1.bundle", signing_key=key)
    import_bundle(post, first.path, model_available=offline_model_here)
    change_what_the_queries_find(issuer)
    second = export_bundle(issuer, tmp_path / "B2.bundle", signing_key=key,
                           since="B-0001" if kind == "delta" else None)
    with Library(post) as library:
        old = answers(library, offline_embedder, queries())
    import_bundle(reference, first.path, model_available=offline_model_here)
    import_bundle(reference, second.path, model_available=offline_model_here)
    with Library(reference) as library:
        new = answers(library, offline_embedder, queries())
    assert old != new
    assert old[0][2][0][0] == "SMP-COIN-18" and all(m[0] != "SMP-COIN-18" for m in new[0][2])

    service = Library(post)  # as the service holds it: opened before the import, refreshed per search
    lagging = Library(post)  # one that does not refresh until told to
    assert answers(lagging, offline_embedder, queries()) == old
    seen: list[object] = []
    errors: list[BaseException] = []
    imported = threading.Event()

    def officer() -> None:
        after = 0
        try:
            while after < 2:
                done = imported.is_set()
                service.refresh()
                seen.append(answers(service, offline_embedder, queries()))
                after += done
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=officer)
    thread.start()
    try:
        time.sleep(0.2)
        import_bundle(post, second.path, model_available=offline_model_here)
        imported.set()
    finally:
        thread.join(timeout=300)
        service.close()
    assert not errors, errors
    assert seen and all(a in (old, new) for a in seen), "an answer mixed old and new data"
    assert seen[-1] == new and seen[0] == old
    try:
        # The old catalogue's files were not touched: a Library not yet refreshed still answers from them.
        assert answers(lagging, offline_embedder, queries()) == old
        assert lagging.refresh() is True
        assert answers(lagging, offline_embedder, queries()) == new
        assert lagging.check() == []
    finally:
        lagging.close()


def synthetic_home(home, model_name: str, seed: int):
    """A small catalogue of random unit vectors bound to a made-up model (no embedding needed)."""
    import numpy as np

    from artefact.embed.models import ModelDescription
    from artefact.index.records import ObjectRecord

    model = ModelDescription("test", model_name, None, 8, {"size": 8}, f"{model_name}-weights", False)
    rng = np.random.default_rng(seed)
    with Library(home) as library:
        library.bind_model(model)
        library.vectors
        cat = library.catalogue
        ids, xb = [], rng.standard_normal((4, 8)).astype(np.float32)
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        with cat.transaction():
            for n, v in enumerate(xb):
                pk, _ = cat.upsert_object(ObjectRecord(f"{model_name}-{n}", {"title": f"object {n}"}))
                ids.append(cat.add_image(pk, f"{n}.jpg", f"{model_name}{n}", 1, 0, 8, 8, v))
        library.add_vectors(np.asarray(ids, np.int64), xb)
        library.mark_synced()
        library.save()
    return home


def test_a_catalogue_for_another_model_is_not_followed_until_restart(tmp_path, new_post):
    post = new_post("post")
    first = synthetic_home(tmp_path / "agency-a", "model-a", 1)
    second = synthetic_home(tmp_path / "agency-b", "model-b", 2)
    anything = lambda d: True  # noqa: E731  (the post can load either model)
    import_bundle(post, export_bundle(first, tmp_path / "a.bundle").path, allow_unsigned=True, model_available=anything)
    service = Library(post)
    try:
        before = sorted(service.catalogue.image_ids().tolist())
        report = import_bundle(post, export_bundle(second, tmp_path / "b.bundle").path, allow_unsigned=True,
                               model_available=anything)
        assert report.model_changed and "restart" in report.notes[-1]
        assert service.refresh() is False
        assert service.switch_blocked and "restart" in service.switch_blocked
        assert service.model is not None and service.model.model_name == "model-a"
        assert sorted(service.catalogue.image_ids().tolist()) == before  # still the old catalogue, whole
    finally:
        service.close()
    with Library(post) as restarted:
        assert restarted.model is not None and restarted.model.model_name == "model-b"
        assert restarted.check() == []


def test_first_import_replaces_a_local_catalogue_and_later_prunes_its_files(tmp_path, new_post):
    from bundle_helpers import home_files

    post = new_post("post")
    synthetic_home(post, "model-a", 3)  # a catalogue built at the post itself, the old way
    agency = synthetic_home(tmp_path / "agency", "model-a", 1)
    local = {k: v for k, v in home_files(post).items() if k.startswith(("audit", "access", "trusted"))}
    service = Library(post)
    try:
        old_ids = sorted(service.vectors.ids().tolist())
        report = import_bundle(post, export_bundle(agency, tmp_path / "a1.bundle").path, allow_unsigned=True,
                               model_available=lambda d: True)
        assert "replaced a catalogue of 4 objects" in report.notes[0]
        assert sorted(service.vectors.ids().tolist()) == old_ids  # not moved before its refresh
        assert service.refresh() is True
        assert service.catalogue.path.parent.parent == post / "catalogue-versions"
        assert sorted(o.object_id for o in service.catalogue.list_objects()) == [f"model-a-{n}" for n in range(4)]
        assert service.check() == []
    finally:
        service.close()
    assert (post / "vectors.faiss").exists()  # the replaced catalogue's files stay until the next import
    with Library(agency) as library, library.writing():
        library.set_status("model-a-0", "recovered")
    import_bundle(post, export_bundle(agency, tmp_path / "a2.bundle").path, allow_unsigned=True,
                  model_available=lambda d: True)
    assert not (post / "vectors.faiss").exists()
    after = home_files(post)
    assert {k: after[k] for k in local} == local


def test_a_service_on_an_empty_home_follows_only_a_catalogue_of_its_own_model(tmp_path, new_post):
    from artefact.embed.models import ModelDescription

    agency = synthetic_home(tmp_path / "agency", "model-a", 1)
    bundle = export_bundle(agency, tmp_path / "a.bundle").path
    for loaded, follows in (("model-b", False), ("model-a", True)):
        post = new_post(f"post-{loaded}")
        service = Library(post)  # an empty home: the service loaded a model of its own choosing
        service.check_model(ModelDescription("test", loaded, None, 8, {"size": 8}, f"{loaded}-weights", False))
        try:
            import_bundle(post, bundle, allow_unsigned=True, model_available=lambda d: True)
            service.refresh()
            assert (service.catalogue.path.parent.parent == post / "catalogue-versions") is follows
            assert (service.switch_blocked is None) is follows
        finally:
            service.close()
