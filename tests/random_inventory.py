"""A bulk-ingest inventory of small random photos, and how many photos a home has committed so far:
for the kill-and-resume tests of in-process and Ray ingest. Importable from any test (tests/ is on
sys.path through tests/conftest.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image


def random_inventory(root: Path, n_objects: int, per_object: int, seed: int) -> Path:
    """`OBJ-nnn` objects with `per_object` random 64x48 JPEGs each under `root`; returns the manifest."""
    rng = np.random.default_rng(seed)
    rows = ["id,title,status,images"]
    for o in range(n_objects):
        refs = []
        for p in range(per_object):
            rel = f"obj{o:03d}/{p}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / rel, quality=90)
            refs.append(rel)
        rows.append(f"OBJ-{o:03d},Object {o},stolen,{';'.join(refs)}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def committed_images(home: Path) -> int:
    """Photos committed in the home's catalogue, read-only (0 before the catalogue or its schema exists)."""
    db = home / "catalogue.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT count(*) FROM images").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # schema not created yet
