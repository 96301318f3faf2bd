"""A served post takes a new catalogue bundle: freshness in /v1/stats and /readyz, /v1/admin/reload (admin only)."""

from __future__ import annotations

import shutil

from artefact.index.bundle import create_key_pair, export_bundle, import_bundle
from artefact.index.home import Home
from artefact.index.library import Library


def test_post_service_shows_its_bundle_and_reloads_a_new_one(copy_home, start_live_server, tiny_embedder, tmp_path):
    issuer = copy_home("issuer")
    key = create_key_pair(tmp_path / "keys", "agency")
    post = tmp_path / "post"
    Home(post).trusted_keys.mkdir(parents=True)
    shutil.copy(key.public_path, Home(post).trusted_keys / "agency.pub")
    same_model = lambda d: d.identity() == tiny_embedder.description.identity()  # noqa: E731
    import_bundle(post, export_bundle(issuer, tmp_path / "B1.bundle", signing_key=key.private_path).path,
                  model_available=same_model)

    server = start_live_server(post, catalogue_max_age_days=0)  # any age is too old: the warning shows
    officer, admin = server.client("officer"), server.client("admin")
    stats = officer.get("/v1/stats").json()
    fresh = stats["freshness"]
    assert fresh["bundle_id"] == "B-0001" and fresh["summary"].startswith("catalogue as of 20")
    assert fresh["stale"] and "import a newer bundle" in fresh["warning"]
    ready = server.client(None).get("/readyz").json()
    assert ready["status"] == "ready" and ready["freshness"]["bundle_id"] == "B-0001"
    assert officer.get("/v1/objects/SMP-COIN-03").status_code == 200

    with Library(issuer) as library, library.writing():
        library.remove_object("SMP-COIN-03")
    delta = export_bundle(issuer, tmp_path / "B2.bundle", since="B-0001", signing_key=key.private_path)
    import_bundle(post, delta.path)  # while the service runs

    for role in ("officer", "curator"):
        assert server.client(role).post("/v1/admin/reload").status_code == 403
    r = admin.post("/v1/admin/reload")
    assert r.status_code == 200, r.text
    assert r.json()["reloaded"] is True and r.json()["freshness"]["bundle_id"] == "B-0002"
    assert officer.get("/v1/objects/SMP-COIN-03").status_code == 404
    assert officer.get("/v1/stats").json()["freshness"]["bundle_id"] == "B-0002"
    assert admin.post("/v1/admin/reload").json()["reloaded"] is False  # nothing new
