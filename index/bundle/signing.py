"""Ed25519 keys for bundles: key pairs for the issuing agency, signatures over the manifest, trusted keys at posts."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from artefact.embed.fileio import atomic_write_bytes
from artefact.index.bundle.errors import BundleSignatureError, SigningKeyError
from artefact.index.home import Home

ALGORITHM = "ed25519"
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
MAX_SIGNATURE_BYTES = 4096


@dataclass(frozen=True)
class KeyPair:
    """Where a new key pair was written, and the id that bundles and posts will show for it."""

    private_path: Path
    public_path: Path
    key_id: str


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short fingerprint of a public key (first 16 hex digits of SHA-256 of its raw bytes)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def create_key_pair(folder: Path, name: str = "agency", passphrase: bytes | None = None) -> KeyPair:
    """Make an Ed25519 key pair: `NAME.key` (private, mode 0600) and `NAME.pub` (give this to posts).

    Raises:
        SigningKeyError: a key of that name exists already (keys are never overwritten).
    """
    folder = Path(folder)
    private_path, public_path = folder / f"{name}{PRIVATE_SUFFIX}", folder / f"{name}{PUBLIC_SUFFIX}"
    for path in (private_path, public_path):
        if path.exists():
            raise SigningKeyError(f"{path} exists already; keys are never overwritten: choose another --name")
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    folder.mkdir(parents=True, exist_ok=True)
    # O_EXCL + 0600: the private key is never readable by others, not even for a moment.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
        f.flush()
        os.fsync(f.fileno())
    atomic_write_bytes(public_path, public_pem)
    return KeyPair(private_path, public_path, key_id(key.public_key()))


def load_private_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Raises: SigningKeyError with what to do (missing file, wrong passphrase, not Ed25519)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=passphrase)
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc.strerror or exc}") from exc
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"{path} is not a usable private key ({exc}); give the .key file made by `artefact signing create` "
            "(and its passphrase in ARTEFACT_SIGNING_PASSPHRASE if it has one)"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key; make one with `artefact signing create`")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise SigningKeyError(f"cannot read public key {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not a PEM public key ({exc}); use the .pub file the agency gave you") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key")
    return key


def trusted_keys(home: Home, extra: Iterable[Path] = ()) -> dict[str, Ed25519PublicKey]:
    """Public keys this home trusts: every `*.pub` in HOME/trusted-keys/, plus any named.

    Raises:
        SigningKeyError: a key file there cannot be read (better loud than silently ignored).
    """
    paths = sorted(home.trusted_keys.glob(f"*{PUBLIC_SUFFIX}")) if home.trusted_keys.is_dir() else []
    keys: dict[str, Ed25519PublicKey] = {}
    for path in [*paths, *extra]:
        key = load_public_key(path)
        keys[key_id(key)] = key
    return keys


def signature_bytes(private_key: Ed25519PrivateKey, manifest: bytes) -> bytes:
    """Content of the signature member: the algorithm, the signer's key id and the signature."""
    sig = private_key.sign(manifest)
    return _encode(key_id(private_key.public_key()), sig)


def _encode(kid: str, sig: bytes) -> bytes:
    return json.dumps(
        {"algorithm": ALGORITHM, "key_id": kid, "signature": base64.b64encode(sig).decode("ascii")},
        sort_keys=True, separators=(",", ":"),
    ).encode("ascii")


def check_signature(
    signature: bytes | None, manifest: bytes, trusted: Mapping[str, Ed25519PublicKey], allow_unsigned: bool
) -> str | None:
    """The trusted key id that signed `manifest`, or None for an unsigned bundle allowed as such.

    Raises:
        BundleSignatureError: unsigned (and not allowed), unknown key, or a signature that does not match.
    """
    if signature is None:
        if allow_unsigned:
            return None
        raise BundleSignatureError(
            "the bundle is not signed, so nothing shows that your agency issued it; ask for a signed "
            "bundle (`bundle export --sign KEY`), or pass --allow-unsigned if you accept that risk"
        )
    try:
        d = json.loads(signature.decode("ascii"))
        kid, sig = str(d["key_id"]), base64.b64decode(d["signature"], validate=True)
        canonical = d["algorithm"] == ALGORITHM and _encode(kid, sig) == signature
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise BundleSignatureError(f"the bundle's signature is damaged ({exc!r}); the bundle is refused") from exc
    if not canonical:
        raise BundleSignatureError("the bundle's signature record is not in the form artefact-search writes; refused")
    key = trusted.get(kid)
    if key is None:
        known = ", ".join(sorted(trusted)) or "none"
        raise BundleSignatureError(
            f"the bundle is signed with key {kid}, which this home does not trust (trusted: {known}); "
            "put the issuing agency's public key in HOME/trusted-keys/ if it is theirs"
        )
    try:
        key.verify(sig, manifest)
    except InvalidSignature as exc:
        raise BundleSignatureError(
            f"the signature by key {kid} does not match the bundle's manifest: the bundle was altered "
            "after signing, or signed with another key; refused"
        ) from exc
    return kid
