"""The HTTP service on a home whose vectors live in Milvus Lite: searches answer from Milvus and follow
a curator's status change (filter fields upserted into Milvus)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("milvus_lite", reason="the scale extra (pymilvus + milvus-lite) is not installed")

from pymilvus import MilvusClient  # noqa: E402

from artefact.index.catalogue import SearchFilters  # noqa: E402
from artefact.index.home import Home  # noqa: E402
from artefact.index.ingest import ingest_manifest  # noqa: E402
from artefact.index.library import Library  # noqa: E402
from artefact.index.stores.choice import settle  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"


@pytest.fixture(scope="module")
def milvus_live(tmp_path_factory: pytest.TempPathFactory, tiny_embedder: Any, start_live_server: Any) -> Any:
    home = tmp_path_factory.mktemp("milvus-service") / "home"
    settle(Home(home), "milvus-lite:vectors.db")
    with Library(home) as library:
        report = ingest_manifest(library, tiny_embedder, SAMPLE / "catalogue.csv", SAMPLE / "images", workers=0,
                                 progress=False)
    assert report.images_added == 33
    return start_live_server(home)  # no --vector-store given: the service reads the home's choice


def test_the_service_searches_milvus_and_follows_status_changes(milvus_live: Any) -> None:
    photo = (SAMPLE / "images" / "SMP-PAINT-01" / "1.jpg").read_bytes()
    officer = milvus_live.client("officer")

    def search() -> dict[str, Any]:
        r = officer.post("/v1/search/photo", files=[("photos", ("p.jpg", photo, "image/jpeg"))], data={"k": "5"})
        assert r.status_code == 200, r.text
        return r.json()

    assert milvus_live.client("admin").get("/v1/stats").status_code == 200
    library = milvus_live.app.state.service.engine.library
    assert library.vectors.kind == "milvus" and library.vectors.ntotal == 33
    assert search()["matches"][0]["object"]["id"] == "SMP-PAINT-01"
    r = milvus_live.client("curator").put("/v1/objects/SMP-PAINT-01/status", json={"status": "recovered"})
    assert r.status_code == 200, r.text
    assert "SMP-PAINT-01" not in [m["object"]["id"] for m in search()["matches"]]
    raw = MilvusClient(uri=library.store_choice.location)
    rows = raw.query(library.vectors.collection, filter='status == "recovered"', output_fields=["id"])
    recovered = library.catalogue.image_ids(SearchFilters(status=("recovered",)))
    assert sorted(r["id"] for r in rows) == sorted(recovered.tolist())
    assert {i.image_id for i in library.catalogue.object_images("SMP-PAINT-01")} <= set(recovered.tolist())
