"""API keys: random secrets shown once; only their SHA-256 (optionally peppered) is stored.

The pepper (API_KEY_PEPPER) is an HMAC key kept outside the database. To rotate
it without invalidating keys, the previous peppers stay accepted for a while
(API_KEY_PEPPER_PREVIOUS): a lookup tries the current pepper and the previous
ones in one query, and a key found with a previous pepper is rehashed with the
current one (API_KEY_REHASH). Each key records a short fingerprint of the
pepper its hash was made with (``pepper_id``), so ``keys peppers`` can tell
when no active key needs a previous pepper any more.

The API's runtime database role has no privileges on ``api_keys`` at all: it
calls three SECURITY DEFINER functions owned by the schema owner (migration
6): ``api_key_lookup`` (given the candidate hashes of a presented key: that
key's id, role, owner, matched hash, expiry and status; stamps last use),
``api_key_rehash`` (a key's new hash, only for a caller that supplies its
current hash, i.e. knows the key) and ``api_key_expiry_summary`` (counts for
/metrics). A compromised app host can neither read the stored hashes nor
mint or promote a key. The CLI (owner role) manages keys directly.

Keys may expire (``expires_at``, migration 5): an expired key is refused with
its own message. ``keys create`` gives a new key its role's default lifetime
(API_KEY_EXPIRY_DAYS_<ROLE>) unless told otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any

import psycopg

from vector_search.access import KEY_ROLES
from vector_search.config import Settings

KEY_PREFIX = "vs_"
# generate_key: the prefix and token_urlsafe(32), i.e. 43 characters of the URL-safe alphabet
KEY_PATTERN = re.compile(r"^vs_[A-Za-z0-9_-]{43}$")
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

    @classmethod
    def from_settings(cls, settings: Settings) -> Peppers:
        """API_KEY_PEPPER, API_KEY_PEPPER_PREVIOUS and API_KEY_REHASH."""
        return cls(
            settings.api_key_pepper,
            settings.api_key_pepper_previous,
            settings.api_key_rehash,
        )

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
    expires_at: datetime | None = None

    def status(self, now: datetime | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (
            now or datetime.now(UTC)
        ):
            return "expired"
        return "active"


@dataclass(frozen=True)
class KeyLookup:
    """The outcome of presenting a key: ``status`` is active, expired, revoked or unknown."""

    status: str
    key_id: int | None = None
    role: str | None = None
    owner: str | None = None
    expires_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status == "active"


def well_formed(key: str) -> bool:
    """Whether a presented token can be a key at all (checked before any lookup)."""
    return KEY_PATTERN.fullmatch(key) is not None


_DURATION = re.compile(r"^\s*(\d+)\s*([hdwy])\s*$", re.IGNORECASE)
_UNIT_DAYS = {"h": 1 / 24, "d": 1, "w": 7, "y": 365}


def parse_lifetime(value: str) -> timedelta:
    """``90d``, ``12w``, ``1y`` (365 days) or ``36h``."""
    match = _DURATION.match(value)
    if not match or int(match[1]) == 0:
        raise ValueError(
            f"expected a lifetime such as 90d, 12w, 1y or 36h, got {value!r}"
        )
    return timedelta(days=int(match[1]) * _UNIT_DAYS[match[2].lower()])


def parse_expiry_date(value: str, now: datetime | None = None) -> datetime:
    """``2027-06-30`` (the key works through that day, UTC) or an ISO date-time with zone."""
    now = now or datetime.now(UTC)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            day = date.fromisoformat(value.strip())
            when = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
        else:
            when = datetime.fromisoformat(value.strip())
            if when.tzinfo is None:
                raise ValueError("no time zone")
    except ValueError:
        raise ValueError(
            f"expected a date (2027-06-30) or a date-time with time zone "
            f"(2027-06-30T12:00+00:00), got {value!r}"
        ) from None
    if when <= now:
        raise ValueError(f"{value} is not in the future")
    return when


def default_expiry(days: int, now: datetime | None = None) -> datetime | None:
    """A role's default expiry from now (None: the role's keys do not expire)."""
    return None if days <= 0 else (now or datetime.now(UTC)) + timedelta(days=days)


def hash_key(key: str, pepper: str = "") -> str:
    if pepper:
        return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_key(
    conn: psycopg.Connection[Any],
    role: str,
    owner: str,
    pepper: str | Peppers = "",
    expires_at: datetime | None = None,
) -> tuple[int, str]:
    """A new key (owner role); ``expires_at`` None: it does not expire."""
    if role not in KEY_ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(KEY_ROLES)}")
    if not owner.strip():
        raise ValueError("owner must not be empty")
    key = generate_key()
    current = Peppers.of(pepper).current
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO api_keys (key_prefix, key_hash, pepper_id, role, owner, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (
                key[:10],
                hash_key(key, current),
                pepper_id(current),
                role,
                owner.strip(),
                expires_at,
            ),
        ).fetchone()
    assert row is not None
    return int(row[0]), key


def list_keys(conn: psycopg.Connection[Any]) -> list[ApiKeyRecord]:
    rows = conn.execute(
        "SELECT id, key_prefix, role, owner, created_at, revoked_at, last_used_at, expires_at "
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


def set_expiry(
    conn: psycopg.Connection[Any], key_id: int, expires_at: datetime | None
) -> bool:
    """Change an active key's expiry (owner role); None: it no longer expires."""
    with conn.transaction():
        cur = conn.execute(
            "UPDATE api_keys SET expires_at = %s WHERE id = %s AND revoked_at IS NULL",
            (expires_at, key_id),
        )
        return cur.rowcount == 1


def authenticate_key(
    conn: psycopg.Connection[Any], key: str, pepper: str | Peppers = ""
) -> KeyLookup:
    """Look a presented key up through ``api_key_lookup`` (one query, every accepted
    pepper); the function stamps an active key's last use at most once a minute.

    A key found with a previous pepper is rehashed with the current one when
    ``rehash`` is on; a failure to rehash is logged, never fatal.
    """
    peppers = Peppers.of(pepper)
    candidates = {hash_key(key, p): p for p in peppers.accepted()}
    row = conn.execute(
        "SELECT key_id, key_role, key_owner, matched_hash, key_expires_at, key_status "
        "FROM api_key_lookup(%s, %s)",
        (list(candidates), [pepper_id(p) for p in candidates.values()]),
    ).fetchone()
    if row is None:
        return KeyLookup("unknown")
    key_id, role, owner, matched, expires_at, status = row
    if status != "active":
        return KeyLookup(str(status), int(key_id), expires_at=expires_at)
    used = candidates[matched]
    if used != peppers.current and peppers.rehash:
        _rehash(conn, int(key_id), matched, hash_key(key, peppers.current), peppers)
    return KeyLookup("active", int(key_id), str(role), str(owner), expires_at)


def lookup_key(
    conn: psycopg.Connection[Any], key: str, pepper: str | Peppers = ""
) -> tuple[int, str, str] | None:
    """(id, role, owner) of an active (not revoked, not expired) key, else None."""
    found = authenticate_key(conn, key, pepper)
    if not found.ok:
        return None
    assert found.key_id is not None and found.role and found.owner is not None
    return found.key_id, found.role, found.owner


def _rehash(
    conn: psycopg.Connection[Any],
    key_id: int,
    old_hash: str,
    new_hash: str,
    peppers: Peppers,
) -> None:
    # api_key_rehash changes the hash only if the caller supplies the stored one:
    # concurrent rehashes of the same key by several instances are harmless.
    try:
        with conn.transaction():
            row = conn.execute(
                "SELECT api_key_rehash(%s, %s, %s, %s)",
                (key_id, old_hash, new_hash, pepper_id(peppers.current)),
            ).fetchone()
    except psycopg.Error as exc:
        log.warning(
            "could not rehash an API key with the current pepper",
            extra={"key_id": key_id, "error": exc.diag.message_primary or str(exc)},
        )
        return
    if row and row[0]:
        log.info(
            "rehashed an API key with the current pepper", extra={"key_id": key_id}
        )


@dataclass(frozen=True)
class ExpirySummary:
    role: str
    active: int
    expiring_soon: int
    without_expiry: int


def expiry_summary(
    conn: psycopg.Connection[Any], warning_days: int
) -> list[ExpirySummary]:
    """Active keys per role: all, expiring within ``warning_days``, without expiry
    (every role present, zeros included); runtime role through api_key_expiry_summary."""
    rows = conn.execute(
        "SELECT key_role, active, expiring, without_expiry "
        "FROM api_key_expiry_summary(make_interval(days => %s))",
        (warning_days,),
    ).fetchall()
    found = {r[0]: r for r in rows}
    return [
        ExpirySummary(
            role,
            int(found[role][1]) if role in found else 0,
            int(found[role][2]) if role in found else 0,
            int(found[role][3]) if role in found else 0,
        )
        for role in KEY_ROLES
    ]


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


class KeyStats:
    """Expiry counts for /metrics, read at most once per API_KEY_STATS_TTL per
    process (one small query through api_key_expiry_summary); a failed read
    keeps the last counts and is retried after a tenth of the TTL."""

    def __init__(self, pool: Any, settings: Any) -> None:
        self._pool = pool
        self._warning_days = int(settings.api_key_expiry_warning_days)
        self._ttl = float(settings.api_key_stats_ttl)
        self._lock = threading.Lock()
        self._rows: list[ExpirySummary] | None = None
        self._next_read = 0.0

    def summary(self) -> list[ExpirySummary] | None:
        with self._lock:
            now = monotonic()
            if now < self._next_read:
                return self._rows
            try:
                with (
                    self._pool.connection(timeout=1.0) as conn,
                    conn.transaction(),
                ):
                    conn.execute("SELECT set_config('statement_timeout', '2000', true)")
                    self._rows = expiry_summary(conn, self._warning_days)
            except Exception as exc:  # noqa: BLE001 - metrics must never fail a scrape
                log.warning(
                    "could not read API key expiry counts",
                    extra={"error": type(exc).__name__},
                )
                self._next_read = now + self._ttl / 10
            else:
                self._next_read = now + self._ttl
            return self._rows
