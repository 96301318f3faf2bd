"""Model descriptions' helpers: the weights checksum and its memo in the model cache."""

from __future__ import annotations

import hashlib
import json
import os

from artefact.embed.models import file_sha256


def test_checksum_is_memoised_by_path_size_and_mtime(tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(3 << 20))  # several read chunks
    cache = tmp_path / "models"
    digest = file_sha256(weights, cache)
    assert digest == hashlib.sha256(weights.read_bytes()).hexdigest()

    memo_file = cache / "checksums.json"
    memo = json.loads(memo_file.read_text())
    assert list(memo.values()) == [digest]
    assert [p.name for p in cache.iterdir()] == ["checksums.json"]  # written atomically: no temp file left

    # The memo is trusted while path, size and mtime are unchanged ...
    (key,) = memo
    memo_file.write_text(json.dumps({key: "memoised"}))
    assert file_sha256(weights, cache) == "memoised"
    # ... and a rewritten file is hashed again.
    weights.write_bytes(b"other weights")
    assert file_sha256(weights, cache) == hashlib.sha256(b"other weights").hexdigest()
    assert len(json.loads(memo_file.read_text())) == 2


def test_checksum_without_a_usable_cache(tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"weights")
    want = hashlib.sha256(b"weights").hexdigest()
    assert file_sha256(weights) == want  # no cache folder: nothing memoised
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    assert file_sha256(weights, blocked) == want  # memo cannot be written: still the right digest
    corrupt = tmp_path / "cache"
    corrupt.mkdir()
    (corrupt / "checksums.json").write_text("{not json")
    assert file_sha256(weights, corrupt) == want
    assert json.loads((corrupt / "checksums.json").read_text())  # replaced by a valid memo
