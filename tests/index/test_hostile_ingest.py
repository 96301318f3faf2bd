"""The hostile-upload corpus through bulk ingest: every bad file is a reported, skipped photo, the
good ones are indexed, nothing is half-written, and the ingest's memory stays bounded (measured in
a fresh process, decoding in-process so its peak is the ingest's own)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from artefact.index.library import Library

from hostile_corpus import corpus
from index_helpers import SAMPLE_IMAGES

PEAK_GROWTH_MIB = 150

_INGEST = r"""
import json, resource, sys
from pathlib import Path
from artefact.embed.loader import load_embedder
from artefact.embed.models import LoadOptions, ModelSpec
from artefact.index.ingest import ingest_manifest
from artefact.index.library import Library
home, manifest, root, config_dir = map(Path, sys.argv[1:5])
embedder = load_embedder(ModelSpec("open_clip", "tiny-clip", None),
                         LoadOptions(config_dir=config_dir, cache_dir=home.parent / "cache", allow_download=False))
embedder.embed_prepared([__import__("numpy").zeros((32, 32, 3), "uint8")])  # warm: first-call set-up is not the ingest's
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with Library(home) as lib:
    report = ingest_manifest(lib, embedder, manifest, root, workers=0, progress=False)
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"report": report.to_dict(), "peak_growth_mib": peak}))
"""


def test_the_hostile_corpus_through_bulk_ingest(tmp_path, tiny_config_dir):
    root = tmp_path / "images"
    root.mkdir()
    rows = []
    for n, item in enumerate(corpus()):
        (root / item.name).write_bytes(item.data)
        rows.append({"id": f"H-{n:02d}", "images": item.name, "title": item.name})
    good = sorted(SAMPLE_IMAGES.glob("SMP-COIN-0*/*.jpg"))[:2]
    for n, src in enumerate(good):
        shutil.copy(src, root / f"good-{n}.jpg")
        rows.append({"id": f"GOOD-{n}", "images": f"good-{n}.jpg"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    home = tmp_path / "home"

    done = subprocess.run([sys.executable, "-c", _INGEST, str(home), str(manifest), str(root), str(tiny_config_dir)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    report = out["report"]

    with Library(home) as lib:
        images = {r.object_id: len(lib.catalogue.object_images(r.object_id)) for r in lib.catalogue.list_objects(limit=500)}
        assert lib.check() == []  # every stored photo has its vector, and no more
        assert lib.vectors.ntotal == sum(images.values())
    failed = {p["file"]: p["problem"] for p in report["problems"] if p["kind"] == "error"}
    for n, item in enumerate(corpus()):
        oid = f"H-{n:02d}"
        if not item.decodes:
            assert images.get(oid, 0) == 0, item.name
            assert item.name in failed, item.name  # reported with its reason ...
            assert failed[item.name] and "Traceback" not in failed[item.name]
        elif item.expect == (200, 201):
            assert images[oid] == 1, item.name  # ... or indexed
        else:  # metadata bombs may go either way, but wholly
            assert images[oid] == (0 if item.name in failed else 1), item.name
    assert images["GOOD-0"] == images["GOOD-1"] == 1
    assert report["images_failed"] == len(failed)
    with open(report["report"], newline="", encoding="utf-8") as f:
        listed = {row["file"] for row in csv.DictReader(f) if row["kind"] == "error"}
    assert listed == set(failed)
    print(f"\nbulk ingest of {len(rows)} rows ({len(failed)} refused): peak memory +{out['peak_growth_mib']:.0f} MiB")
    assert out["peak_growth_mib"] < PEAK_GROWTH_MIB, out
