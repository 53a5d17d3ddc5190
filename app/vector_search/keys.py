"""API keys: random secrets shown once; only their SHA-256 (optionally peppered) is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from vector_search.roles import KEY_ROLES

KEY_PREFIX = "vs_"


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
    conn: psycopg.Connection[Any], role: str, owner: str, pepper: str = ""
) -> tuple[int, str]:
    if role not in KEY_ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(KEY_ROLES)}")
    if not owner.strip():
        raise ValueError("owner must not be empty")
    key = generate_key()
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO api_keys (key_prefix, key_hash, role, owner) "
            "VALUES (%s, %s, %s, %s) RETURNING id",
            (key[:10], hash_key(key, pepper), role, owner.strip()),
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
    conn: psycopg.Connection[Any], key: str, pepper: str = ""
) -> tuple[int, str, str] | None:
    """(id, role, owner) of an active key, stamping its last use at most once a minute."""
    row = conn.execute(
        "SELECT id, role, owner FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
        (hash_key(key, pepper),),
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE id = %s "
        "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        (row[0],),
    )
    return int(row[0]), str(row[1]), str(row[2])
