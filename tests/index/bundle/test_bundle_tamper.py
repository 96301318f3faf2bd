"""Refusals: a changed byte anywhere, a wrong or missing signature, a missing part; the home is left as it was."""

from __future__ import annotations

import base64
import json
import random
import shutil
from pathlib import Path

import pytest

from artefact.index.bundle import (
    BundleError,
    BundleFormatError,
    BundleIntegrityError,
    BundleSignatureError,
    export_bundle,
    import_bundle,
    read_bundle,
)
from artefact.index.bundle.container import SIGNATURE_MEMBER, part_member
from artefact.index.bundle.signing import load_private_key, signature_bytes, trusted_keys
from artefact.index.home import Home

from bundle_helpers import home_files, member_content, members, replace_member_content, without_member


@pytest.fixture(scope="module")
def signed(built_issuer: Path, agency_key, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("tamper")
    issuer = work / "issuer"
    shutil.copytree(built_issuer, issuer, symlinks=True)
    return export_bundle(issuer, work / "signed.bundle", signing_key=agency_key.private_path).path


def positions(bundle: Path) -> list[int]:
    """Bytes to flip: every byte of the manifest checksum and signature, and in every member its
    header (start, checksum field, unused tail), first/middle/last content byte and padding; the
    end-of-archive blocks; plus random positions."""
    size = bundle.stat().st_size
    out: set[int] = set()
    for info in members(bundle):
        h = info.offset
        out.update({h, h + 5, h + 100, h + 124, h + 148, h + 150, h + 257, h + 300, h + 511})
        d, n = info.offset_data, info.size
        if info.name in ("manifest.sha256", SIGNATURE_MEMBER):
            out.update(range(d, d + n))
        elif n:
            out.update({d, d + n // 2, d + n - 1})
        if n % 512:
            out.update({d + n, d + n + (-n) % 512 - 1})
    last = max(i.offset_data + i.size + (-i.size) % 512 for i in members(bundle))
    out.update({last, last + 511, last + 512, size - 1})
    out.update(random.Random(7).sample(range(size), 60))
    return sorted(p for p in out if p < size)


def test_one_changed_byte_anywhere_is_refused(signed, post, tmp_path):
    trusted = trusted_keys(Home(post))
    assert read_bundle(signed, trusted).manifest.bundle_id == "B-0001"
    data = bytearray(signed.read_bytes())
    bad = tmp_path / "bad.bundle"
    spots = positions(signed)
    assert len(spots) > 300
    for pos in spots:
        data[pos] ^= 0x01
        bad.write_bytes(data)
        data[pos] ^= 0x01
        with pytest.raises(BundleError):
            read_bundle(bad, trusted)
            pytest.fail(f"a changed byte at {pos} was not noticed")


@pytest.mark.parametrize("where", ["manifest", "header", "part", "padding", "trailer"])
def test_import_of_a_changed_bundle_leaves_the_home_untouched(signed, post, offline_model_here, tmp_path, where):
    infos = {i.name: i for i in members(signed)}
    part = infos[part_member(1)]
    pos = {
        "manifest": infos["manifest.json"].offset_data + 40,
        "header": part.offset + 130,
        "part": part.offset_data + part.size // 3,
        "padding": next(i.offset_data + i.size for i in infos.values() if i.size % 512),
        "trailer": signed.stat().st_size - 700,
    }[where]
    data = bytearray(signed.read_bytes())
    data[pos] ^= 0x20
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(data)
    before = home_files(post)
    with pytest.raises(BundleIntegrityError, match="changed|corrupted|damaged"):
        import_bundle(post, bad, model_available=offline_model_here)
    assert home_files(post) == before


def test_signature_checks(signed, post, other_key, agency_key, offline_model_here, tmp_path):
    before = home_files(post)
    # Signed by a key the post does not trust.
    stranger = export_bundle(_issuer_copy(signed, tmp_path), tmp_path / "stranger.bundle",
                             signing_key=other_key.private_path).path
    with pytest.raises(BundleSignatureError, match=f"signed with key {other_key.key_id}, which this home does not trust"):
        import_bundle(post, stranger, model_available=offline_model_here)
    # A signature by the trusted key, but over other bytes: the manifest was altered after signing.
    forged = signature_bytes(load_private_key(agency_key.private_path), b"another manifest")
    assert len(forged) == len(member_content(signed, SIGNATURE_MEMBER))
    wrong = replace_member_content(signed, SIGNATURE_MEMBER, forged, tmp_path / "wrong.bundle")
    with pytest.raises(BundleSignatureError, match="does not match the bundle's manifest"):
        import_bundle(post, wrong, model_available=offline_model_here)
    # The same signature spelt differently (unused bits of the last base64 digit set): still a changed byte.
    content = member_content(signed, SIGNATURE_MEMBER)
    sig = json.loads(content)["signature"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    respelt = sig[:-3] + alphabet[alphabet.index(sig[-3]) | 0b1111] + "=="
    assert base64.b64decode(respelt) == base64.b64decode(sig) and respelt != sig
    odd = replace_member_content(signed, SIGNATURE_MEMBER, content.replace(sig.encode(), respelt.encode()),
                                 tmp_path / "respelt.bundle")
    with pytest.raises(BundleSignatureError, match="not in the form"):
        import_bundle(post, odd, model_available=offline_model_here)
    # Unsigned: refused unless allowed.
    unsigned = without_member(signed, SIGNATURE_MEMBER, tmp_path / "unsigned.bundle")
    with pytest.raises(BundleSignatureError, match="not signed.*--allow-unsigned"):
        import_bundle(post, unsigned, model_available=offline_model_here)
    assert home_files(post) == before
    assert read_bundle(unsigned, {}, allow_unsigned=True).signed_by is None


def test_missing_part_truncation_and_foreign_files_are_refused(signed, post, offline_model_here, tmp_path):
    before = home_files(post)
    manifest = read_bundle(signed, trusted_keys(Home(post))).manifest
    gone = without_member(signed, part_member(2), tmp_path / "missing.bundle")
    with pytest.raises(BundleIntegrityError, match=f"incomplete: 1 part.*missing \\({manifest.parts[1].path}\\)"):
        import_bundle(post, gone, model_available=offline_model_here)
    last = without_member(signed, part_member(len(manifest.parts)), tmp_path / "missing-last.bundle")
    with pytest.raises(BundleIntegrityError, match="incomplete"):
        import_bundle(post, last, model_available=offline_model_here)
    cut = tmp_path / "cut.bundle"
    cut.write_bytes(signed.read_bytes()[: signed.stat().st_size // 2])
    with pytest.raises(BundleIntegrityError, match="truncated"):
        import_bundle(post, cut, model_available=offline_model_here)
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + bytes(2000))
    with pytest.raises(BundleError):
        import_bundle(post, junk, model_available=offline_model_here)
    with pytest.raises(BundleFormatError, match="cannot open"):
        import_bundle(post, tmp_path / "nowhere.bundle", model_available=offline_model_here)
    assert home_files(post) == before


def _issuer_copy(signed: Path, tmp_path: Path) -> Path:
    """The module's issuing home (kept beside the signed bundle)."""
    source = signed.parent / "issuer"
    copy = tmp_path / "issuer-copy"
    shutil.copytree(source, copy, symlinks=True)
    return copy
