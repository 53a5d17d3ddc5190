"""API keys: random secrets shown once; only their SHA-256 (optionally peppered) is stored.

The pepper (API_KEY_PEPPER) is an HMAC key kept outside the database. To rotate
it without invalidating keys, the previous peppers stay accepted for a while
(API_KEY_PEPPER_PREVIOUS): a lookup tries the current pepper and the previous
ones in one query, and a key found with a previous pepper is rehashed with the
current one (API_KEY_REHASH). Each key records a short fingerprint of the
pepper its hash was made with (``pepper_id``), so ``keys peppers`` can tell
when no active key needs a previous pepper any more.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from vector_search.roles import KEY_ROLES

KEY_PREFIX = "vs_"
NO_PEPPER_ID = "none"
_PEPPER_ID_LABEL = b"vector-search api key pepper id"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peppers:
    """The pepper new hashes use, earlier ones still accepted, and whether to rehash."""

    current: str = ""
    previous: tuple[str, ...] = ()
    rehash: bool = True

    @classmethod
    def of(cls, value: str | Peppers) -> Peppers:
        return value if isinstance(value, Peppers) else cls(value)

    def accepted(self) -> tuple[str, ...]:
        """The current pepper first, then the previous ones (no duplicates)."""
        out = [self.current]
        out.extend(p for p in self.previous if p not in out)
        return tuple(out)


def pepper_id(pepper: str) -> str:
    """A short public fingerprint of a pepper ('none' without one); it does not reveal the pepper."""
    if not pepper:
        return NO_PEPPER_ID
    return hmac.new(pepper.encode(), _PEPPER_ID_LABEL, hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    key_prefix: str
    role: str
    owner: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def hash_key(key: str, pepper: str = "") -> str:
    if pepper:
        return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_key(
    conn: psycopg.Connection[Any], role: str, owner: str, pepper: str | Peppers = ""
) -> tuple[int, str]:
    if role not in KEY_ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(KEY_ROLES)}")
    if not owner.strip():
        raise ValueError("owner must not be empty")
    key = generate_key()
    current = Peppers.of(pepper).current
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO api_keys (key_prefix, key_hash, pepper_id, role, owner) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (key[:10], hash_key(key, current), pepper_id(current), role, owner.strip()),
        ).fetchone()
    assert row is not None
    return int(row[0]), key


def list_keys(conn: psycopg.Connection[Any]) -> list[ApiKeyRecord]:
    rows = conn.execute(
        "SELECT id, key_prefix, role, owner, created_at, revoked_at, last_used_at "
        "FROM api_keys ORDER BY id"
    ).fetchall()
    return [ApiKeyRecord(*row) for row in rows]


def revoke_key(conn: psycopg.Connection[Any], key_id: int) -> bool:
    with conn.transaction():
        cur = conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
            (key_id,),
        )
        return cur.rowcount == 1


def lookup_key(
    conn: psycopg.Connection[Any], key: str, pepper: str | Peppers = ""
) -> tuple[int, str, str] | None:
    """(id, role, owner) of an active key, stamping its last use at most once a minute.

    Every accepted pepper is tried in one query. A key found with a previous
    pepper is rehashed with the current one when ``rehash`` is on; a failure
    to rehash (e.g. a schema not migrated yet) is logged, never fatal.
    """
    peppers = Peppers.of(pepper)
    candidates = {hash_key(key, p): p for p in peppers.accepted()}
    row = conn.execute(
        "SELECT id, role, owner, key_hash FROM api_keys "
        "WHERE key_hash = ANY(%s) AND revoked_at IS NULL",
        (list(candidates),),
    ).fetchone()
    if row is None:
        return None
    key_id, role, owner, stored_hash = row
    used = candidates[stored_hash]
    if used != peppers.current and peppers.rehash:
        _rehash(conn, int(key_id), stored_hash, hash_key(key, peppers.current), peppers)
    else:
        used_id = pepper_id(used)
        conn.execute(
            "UPDATE api_keys SET last_used_at = now(), pepper_id = %s WHERE id = %s "
            "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute' "
            "OR pepper_id IS DISTINCT FROM %s)",
            (used_id, key_id, used_id),
        )
    return int(key_id), str(role), str(owner)


def _rehash(
    conn: psycopg.Connection[Any],
    key_id: int,
    old_hash: str,
    new_hash: str,
    peppers: Peppers,
) -> None:
    # Only if the row still has the hash we found: concurrent rehashes of the
    # same key by several instances are harmless.
    try:
        with conn.transaction():
            conn.execute(
                "UPDATE api_keys SET key_hash = %s, pepper_id = %s, last_used_at = now() "
                "WHERE id = %s AND key_hash = %s",
                (new_hash, pepper_id(peppers.current), key_id, old_hash),
            )
    except psycopg.Error as exc:
        log.warning(
            "could not rehash an API key with the current pepper",
            extra={"key_id": key_id, "error": exc.diag.message_primary or str(exc)},
        )
    else:
        log.info(
            "rehashed an API key with the current pepper", extra={"key_id": key_id}
        )


def pepper_usage(conn: psycopg.Connection[Any], peppers: Peppers) -> dict[str, Any]:
    """Active keys per accepted pepper.

    ``unknown``: keys whose pepper is not known yet (created before fingerprints
    were recorded and not used since); they may need a previous pepper.
    ``unaccepted``: keys hashed with a pepper no longer accepted; they do not
    work any more (reissue them).
    """
    rows = conn.execute(
        "SELECT pepper_id, array_agg(id ORDER BY id) FROM api_keys "
        "WHERE revoked_at IS NULL GROUP BY pepper_id"
    ).fetchall()
    by_id: dict[str | None, list[int]] = {r[0]: [int(i) for i in r[1]] for r in rows}
    current_id = pepper_id(peppers.current)
    current = by_id.pop(current_id, [])
    previous = []
    for p in peppers.accepted()[1:]:
        pid = pepper_id(p)
        ids = by_id.pop(pid, [])
        previous.append({"pepper_id": pid, "active_keys": len(ids), "key_ids": ids})
    unknown = by_id.pop(None, [])
    unaccepted = sorted(i for ids in by_id.values() for i in ids)
    return {
        "current": {"pepper_id": current_id, "active_keys": len(current)},
        "previous": previous,
        "unknown": {"active_keys": len(unknown), "key_ids": unknown},
        "unaccepted": {"active_keys": len(unaccepted), "key_ids": unaccepted},
    }
