"""`--vector-store milvus-lite:PATH` on the command line: the home remembers it, searches answer as on FAISS,
`index check` sees a vector deleted behind its back in Milvus and `--repair` restores it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("milvus_lite", reason="the scale extra (pymilvus + milvus-lite) is not installed")

from pymilvus import MilvusClient  # noqa: E402

from artefact.api.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample"
QUERY = SAMPLE / "queries" / "query-painting-SMP-PAINT-01.jpg"


def tiny(config_dir: Path) -> list[str]:
    return ["--backend", "open_clip", "--model", "tiny-clip", "--pretrained", "none", "--model-config-dir", str(config_dir)]


def run(home: Path, config_dir: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--home", str(home), *tiny(config_dir), *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def add(home: Path, config_dir: Path, *flags: str) -> None:
    assert main(["--home", str(home), *tiny(config_dir), "index", "add", str(SAMPLE / "catalogue.csv"),
                 "--images", str(SAMPLE / "images"), "-q", *flags]) == 0


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory, tiny_config_dir: Path) -> dict[str, Path]:
    """The sample indexed twice with the tiny model: FAISS files, and Milvus Lite named on `index add`."""
    faiss_home, milvus_home = tmp_path_factory.mktemp("faiss") / "home", tmp_path_factory.mktemp("milvus") / "home"
    add(faiss_home, tiny_config_dir)
    add(milvus_home, tiny_config_dir, "--vector-store", "milvus-lite:vectors.db")
    return {"faiss": faiss_home, "milvus": milvus_home}


def ranking(out: str) -> list[tuple[str, float, str]]:
    return [(m["object"]["id"], round(m["score"], 4), m["verdict"]) for m in json.loads(out)["matches"]]


def test_later_commands_use_the_remembered_store_and_answer_as_faiss_does(homes, tiny_config_dir, capsys):
    milvus = homes["milvus"]
    assert json.loads((milvus / "vector-store.json").read_text())["vector_store"] == "milvus-lite:vectors.db"
    assert (milvus / "vectors.db").is_dir() and not (milvus / "vectors.faiss").exists()
    rc, out, _ = run(milvus, tiny_config_dir, capsys, "index", "stats", "--json")
    assert rc == 0 and json.loads(out)["index"]["kind"] == "milvus" and json.loads(out)["vectors"] == 33
    for argv in ([], ["--filter", "object_type=coin", "-k", "8"], ["--filter", "country=Italy,France", "--no-rerank"]):
        got = {}
        for name, home in homes.items():
            rc, out, err = run(home, tiny_config_dir, capsys, "search", str(QUERY), "--json", *argv)
            assert rc == 0, err
            got[name] = ranking(out)
        assert got["milvus"] == got["faiss"] and got["milvus"], argv
    rc, out, _ = run(milvus, tiny_config_dir, capsys, "index", "stats")
    assert "Index:    milvus" in out and "milvus-lite:vectors.db" in out


def test_another_store_for_this_home_is_refused(homes, tiny_config_dir, capsys, monkeypatch):
    monkeypatch.setenv("ARTEFACT_VECTOR_STORE", "milvus://elsewhere:19530")
    rc, _, err = run(homes["milvus"], tiny_config_dir, capsys, "index", "stats")
    assert rc == 1 and "not milvus://elsewhere:19530" in err
    monkeypatch.delenv("ARTEFACT_VECTOR_STORE")
    rc, _, err = run(homes["milvus"], tiny_config_dir, capsys, "--vector-store", "faiss", "index", "stats")
    assert rc == 1 and "keeps its vectors in milvus-lite:vectors.db, not faiss" in err
    rc, _, err = run(homes["faiss"], tiny_config_dir, capsys, "index", "stats", "--vector-store", "milvus-lite:v.db")
    assert rc == 1 and "already keeps its vectors in FAISS files" in err
    rc, _, err = run(homes["milvus"], tiny_config_dir, capsys, "index", "optimize")
    assert rc == 1 and "optimize does not apply" in err


def test_check_finds_a_vector_deleted_in_milvus_and_repair_restores_it(homes, tiny_config_dir, capsys):
    home = homes["milvus"]
    raw = MilvusClient(uri=str(home / "vectors.db"))
    (collection,) = raw.list_collections()
    victim = raw.query(collection, filter="id >= 0", output_fields=["id"], limit=1)[0]["id"]
    raw.delete(collection, ids=[victim])
    rc, out, _ = run(home, tiny_config_dir, capsys, "index", "check")
    assert rc == 1 and "PROBLEM: 1 catalogue images have no vector in the index" in out, out
    rc, out, err = run(home, tiny_config_dir, capsys, "index", "check", "--repair")
    assert rc == 0, out + err
    assert "1 vectors added" in out and "OK: 27 objects, 33 photos, 33 vectors, consistent" in out
    assert raw.get(collection, ids=[victim], output_fields=["id"])


def test_a_bundle_from_a_milvus_home_gives_a_post_the_same_answers(homes, tiny_config_dir, capsys, tmp_path):
    """The vectors live in Milvus, not in files beside the catalogue: the bundle carries FAISS files built
    from the catalogue's vectors (exporting once failed looking for the home's vectors.faiss)."""
    bundle, post = tmp_path / "m.bundle", tmp_path / "post"
    rc, _, err = run(homes["milvus"], tiny_config_dir, capsys, "bundle", "export", str(bundle))
    assert rc == 0 and bundle.is_file(), err
    rc, _, err = run(post, tiny_config_dir, capsys, "bundle", "import", str(bundle), "--allow-unsigned")
    assert rc == 0, err
    answers = {}
    for name, home in (("milvus issuer", homes["milvus"]), ("post", post)):
        rc, out, err = run(home, tiny_config_dir, capsys, "search", str(QUERY), "--json")
        assert rc == 0, err
        answers[name] = ranking(out)
    assert answers["post"] == answers["milvus issuer"] and answers["post"], answers
