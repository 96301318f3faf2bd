"""API keys with roles (officer < curator < admin), stored hashed in the installation's access database."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from artefact.embed.errors import ArtefactError
from artefact.embed.fileio import private_file, utc_iso

ROLES = ("officer", "curator", "admin")
KEY_PREFIX = "ak_"


class ApiKeyError(ArtefactError):
    """Unknown key name, duplicate name or bad role."""


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine only (localhost, 127.0.0.0/8, ::1)."""
    host = host.strip().lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def role_allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def hash_key(token: str) -> str:
    # Keys are 256-bit random tokens, so a plain sha256 is not brute-forceable;
    # a slow password hash would only add latency to every request.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a key's name and role (or the anonymous admin of an open installation)."""

    name: str
    role: str


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    created_at: str
    revoked_at: str | None
    last_used_at: str | None


class KeyStore:
    """Keys live in HOME/access.sqlite; only their hashes are stored."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(private_file(path)), isolation_level=None, check_same_thread=False, timeout=30.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS api_keys (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
            "key_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT, last_used_at TEXT)"
        )
        # Once a key has existed, the installation never goes back to open mode (see `ever_had_keys`).
        self.db.execute("CREATE TABLE IF NOT EXISTS access_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def close(self) -> None:
        self.db.close()

    def create(self, name: str, role: str) -> str:
        """Create a key and return its secret token (shown once, never stored)."""
        if role not in ROLES:
            raise ApiKeyError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if not name.strip():
            raise ApiKeyError("a key needs a name (who or what uses it)")
        token = KEY_PREFIX + secrets.token_urlsafe(32)
        now = utc_iso()
        with self._lock:
            try:
                with self.db:  # the key and the first-key marker together
                    self.db.execute("BEGIN IMMEDIATE")
                    self.db.execute(
                        "INSERT INTO api_keys (name, role, key_hash, created_at) VALUES (?, ?, ?, ?)",
                        (name.strip(), role, hash_key(token), now),
                    )
                    self.db.execute("INSERT OR IGNORE INTO access_meta VALUES ('first_key_at', ?)", (now,))
            except sqlite3.IntegrityError as exc:
                raise ApiKeyError(f"a key named {name!r} exists already; revoke it or pick another name") from exc
        return token

    def revoke(self, name: str) -> None:
        with self._lock:
            cur = self.db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (utc_iso(), name)
            )
        if cur.rowcount == 0:
            raise ApiKeyError(f"no active key named {name!r}")

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self.db.execute(
                "SELECT name, role, created_at, revoked_at, last_used_at FROM api_keys ORDER BY name"
            ).fetchall()
        return [ApiKey(*r) for r in rows]

    def active_count(self) -> int:
        with self._lock:
            return int(self.db.execute("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL").fetchone()[0])

    def ever_had_keys(self) -> bool:
        """Whether a key was ever created here, revoked ones included: then a key is always required."""
        with self._lock:
            marker = self.db.execute("SELECT 1 FROM access_meta WHERE key = 'first_key_at'").fetchone()
            return marker is not None or self.db.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key for a token, or None."""
        key = self.identify(token)
        return key if key is not None and key.revoked_at is None else None

    def identify(self, token: str) -> ApiKey | None:
        """The key a token belongs to, revoked or not (an active one is marked used), or None."""
        with self._lock:
            row = self.db.execute(
                "SELECT name, role, created_at, revoked_at, last_used_at FROM api_keys WHERE key_hash = ?",
                (hash_key(token),),
            ).fetchone()
            if row is not None and row[3] is None:
                self.db.execute("UPDATE api_keys SET last_used_at = ? WHERE name = ?", (utc_iso(), row[0]))
        return ApiKey(*row) if row is not None else None
