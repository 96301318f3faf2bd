"""Hardening of catalogue edits (issue 10, findings 7, 12 and 14): atomic create, duplicate photos, files removed with
their object, the orphan sweep, and photos served with their real content type."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from PIL import Image

from artefact.index.catalogue import Catalogue
from artefact.index.home import Home


@pytest.fixture(scope="module")
def server(session_home_factory: Callable[[str], Any], start_live_server: Callable[..., Any]) -> Any:
    return start_live_server(session_home_factory("hardening-catalogue"))


def _create(client: httpx.Client, helpers: Any, object_id: str, *photos: bytes, mime: str = "image/jpeg",
            name: str = "photo.jpg") -> httpx.Response:
    return client.post("/v1/objects", data={"record": json.dumps({"id": object_id, "title": object_id})},
                       files=helpers.upload(*photos, name=name, mime=mime))


def _objects_without_images(home: Path) -> list[str]:
    db = sqlite3.connect(f"file:{Home(home).catalogue}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT object_id FROM objects o WHERE NOT EXISTS "
                          "(SELECT 1 FROM images i WHERE i.object_pk = o.pk)").fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


# -- finding 7: create is one transaction; a duplicate photo is a warning, never a 500 ---------


def test_creating_with_the_same_photo_twice_stores_it_once_with_a_warning(server, helpers) -> None:
    photo = helpers.distinct_photo(701)
    r = _create(server.client("curator"), helpers, "HARD-DUP-1", photo, photo)
    assert r.status_code == 201, r.text
    out = r.json()
    assert len(out["images"]) == 1
    assert out["warnings"] and "same photo" in out["warnings"][0]
    assert server.client("officer").get("/v1/objects/HARD-DUP-1").json()["images"] == out["images"]


def test_adding_a_photo_already_attached_is_skipped_with_a_warning(server, helpers) -> None:
    curator = server.client("curator")
    photo, other = helpers.distinct_photo(702), helpers.distinct_photo(703)
    assert _create(curator, helpers, "HARD-DUP-2", photo).status_code == 201
    r = curator.post("/v1/objects/HARD-DUP-2/photos", files=helpers.upload(photo, other))
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["images"]) == 2 and len(out["warnings"]) == 1 and "already" in out["warnings"][0]
    again = curator.post("/v1/objects/HARD-DUP-2/photos", files=helpers.upload(photo))
    assert again.status_code == 200 and len(again.json()["images"]) == 2 and again.json()["warnings"]


def test_a_failure_while_storing_photos_leaves_no_record(server, helpers, monkeypatch: pytest.MonkeyPatch) -> None:
    catalogue = server.app.state.service.engine.library.catalogue

    def failing_add_image(*args: Any, **kwargs: Any) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(catalogue, "add_image", failing_add_image)
    r = _create(server.client("curator"), helpers, "HARD-ATOMIC-1", helpers.distinct_photo(704))
    assert r.status_code == 500
    monkeypatch.undo()
    assert server.client("officer").get("/v1/objects/HARD-ATOMIC-1").status_code == 404
    assert "HARD-ATOMIC-1" not in _objects_without_images(server.settings.home)
    # and the id is free: a retry creates it
    assert _create(server.client("curator"), helpers, "HARD-ATOMIC-1", helpers.distinct_photo(704)).status_code == 201


def test_kill_9_during_parallel_creates_leaves_no_object_without_photos(copy_home, tiny_config_dir, server_process,
                                                                        helpers) -> None:
    home = copy_home("kill-creates")
    before = set(_objects_without_images(home))
    srv = server_process(home, tiny_config_dir)
    photos = [helpers.distinct_photo(800 + i) for i in range(40)]
    done: list[str] = []
    stop = threading.Event()

    def worker(start: int) -> None:
        with httpx.Client(base_url=srv.url, trust_env=False, timeout=30,
                          headers={"Authorization": f"Bearer {srv.keys['curator']}"}) as c:
            for i in range(start, 40, 8):
                if stop.is_set():
                    return
                try:
                    r = _create(c, helpers, f"KILL-{i:02d}", photos[i])
                except httpx.TransportError:
                    return
                if r.status_code == 201:
                    done.append(f"KILL-{i:02d}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(done) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(srv.pid, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    srv.proc.wait(timeout=30)
    assert len(done) >= 6, "too few creates finished before the kill"
    assert set(_objects_without_images(home)) == before
    catalogue = Catalogue(Home(home).catalogue)
    try:
        for object_id in done:  # every acknowledged create survived, with its photo
            assert len(catalogue.object_images(object_id)) == 1
    finally:
        catalogue.close()


# -- finding 12: delete removes the object's files after the commit; the orphan sweep ------------


def _search(client: httpx.Client, helpers: Any, photo: bytes) -> dict[str, Any]:
    r = client.post("/v1/search/photo", files=helpers.upload(photo), data={"k": "3"})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_delete_removes_uploaded_photos_thumbnails_and_evidence(server, helpers) -> None:
    curator, officer = server.client("curator"), server.client("officer")
    photo_a, photo_b = helpers.distinct_photo(901, side=320), helpers.distinct_photo(902, side=320)
    created = _create(curator, helpers, "HARD-DEL-1", photo_a, photo_b)
    assert created.status_code == 201, created.text
    home = Home(server.settings.home)
    engine = server.app.state.service.engine
    uploads = [Path(i.path) for i in engine.object_view("HARD-DEL-1").images]
    assert all(p.is_file() and home.uploads in p.parents for p in uploads)
    for image in created.json()["images"]:
        assert officer.get(image["thumbnail_url"]).status_code == 200
    thumbs = [p for p in home.thumbnails.iterdir() if p.name.split("-")[0] in
              {str(i["image_id"]) for i in created.json()["images"]}]
    assert len(thumbs) == 2
    top = _search(officer, helpers, photo_a)["matches"][0]
    assert top["object"]["id"] == "HARD-DEL-1" and top["evidence_url"], top
    search_files = [p for p in home.evidence.iterdir() if p.name.startswith(top["evidence_url"].split("/")[3])]
    # The match's evidence image, and the search's own reduced query photo (kept for its sheet).
    evidence = [p for p in search_files if "-q" not in p.name]
    query_photos = [p for p in search_files if "-q" in p.name]
    assert len(evidence) == 1 and len(query_photos) == 1

    assert curator.delete("/v1/objects/HARD-DEL-1").status_code == 200
    leftovers = [p for p in uploads + thumbs + evidence if p.exists()]
    assert not leftovers, leftovers
    assert query_photos[0].is_file()  # the officer's photo belongs to the search record, not to the object
    assert not uploads[0].parent.exists()  # the object's upload folder goes too


def test_delete_never_removes_photos_outside_the_uploads_folder(server) -> None:
    """Bulk-ingested photos are the curator's own files: deleting their object leaves them alone."""
    engine = server.app.state.service.engine
    sources = [Path(i.path) for i in engine.object_view("SMP-PHOTO-01").images]
    assert sources and all(p.is_file() for p in sources)
    assert server.client("curator").delete("/v1/objects/SMP-PHOTO-01").status_code == 200
    assert all(p.is_file() for p in sources)


def test_the_orphan_sweep_removes_files_no_row_refers_to(server, helpers) -> None:
    from artefact.api.http.files import sweep_orphans

    curator, officer = server.client("curator"), server.client("officer")
    photo = helpers.distinct_photo(903, side=320)
    created = _create(curator, helpers, "HARD-ORPHAN-1", photo)
    assert created.status_code == 201
    image = created.json()["images"][0]
    assert officer.get(image["thumbnail_url"]).status_code == 200
    top = _search(officer, helpers, photo)["matches"][0]
    assert top["evidence_url"]
    home = Home(server.settings.home)
    kept = sorted(p for folder in (home.uploads, home.thumbnails, home.evidence) for p in folder.rglob("*") if p.is_file())
    orphans = [home.uploads / "0123456789abcdef" / ("f" * 64), home.thumbnails / "999999-320.jpg",
               home.evidence / f"{'e' * 32}-1.jpg", home.uploads / ("a" * 64)]
    for p in orphans:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"left behind")

    engine = server.app.state.service.engine
    with engine.lock, engine.library.writing():
        found = sweep_orphans(home, engine.library.catalogue, server.app.state.service.audit, dry_run=True)
        assert sorted(found) == sorted(orphans) and all(p.exists() for p in orphans)
        removed = sweep_orphans(home, engine.library.catalogue, server.app.state.service.audit)
    assert sorted(removed) == sorted(orphans)
    assert not any(p.exists() for p in orphans) and not (home.uploads / "0123456789abcdef").exists()
    assert all(p.is_file() for p in kept)
    assert officer.get(image["url"]).content == photo


# -- finding 14: photos uploaded through the API are served with their real content type ------


@pytest.mark.parametrize("fmt, mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_uploaded_photos_are_served_with_their_image_type(server, helpers, fmt: str, mime: str) -> None:
    import io

    buf = io.BytesIO()
    Image.open(io.BytesIO(helpers.distinct_photo(950 + len(fmt)))).save(buf, fmt)
    created = _create(server.client("curator"), helpers, f"HARD-TYPE-{fmt}", buf.getvalue(),
                      mime="application/octet-stream", name="upload.bin")
    assert created.status_code == 201, created.text
    r = server.client("officer").get(created.json()["images"][0]["url"])
    assert r.status_code == 200 and r.content == buf.getvalue()
    assert r.headers["content-type"] == mime
    assert r.headers["x-content-type-options"] == "nosniff"
