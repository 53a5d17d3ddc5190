"""Failed API key authentications per client address, shared through Redis.

An address (an IPv6 client: its /64, which one subscriber usually holds
whole) that failed AUTH_FAILURE_LIMIT times within AUTH_FAILURE_WINDOW
seconds is refused (429) before any key lookup until the window ends: key
guessing costs neither database work nor lets a client try more than the
limit. The window is fixed and starts with the address's first failure.

Counts live in Redis (``<namespace>:authfail:<address>``, expiring with the
window) so every instance sees them. While Redis cannot be reached each
process counts in memory instead, with the same limit: still limited, only
per process (the backoff keeps a dead Redis from costing a timeout per
request).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from typing import Any

import redis

log = logging.getLogger(__name__)

_COUNT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""
_BACKOFF_SECONDS = 2.0
_MAX_LOCAL_ADDRESSES = 100_000


def client_key(remote_addr: str | None) -> str:
    """The unit failures are counted for: an IPv4 address, or an IPv6 /64."""
    try:
        address = ipaddress.ip_address((remote_addr or "").split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class AuthFailures:
    def __init__(
        self, client: redis.Redis, namespace: str, limit: int, window: int
    ) -> None:
        self._r: Any = client
        self._ns = namespace
        self.limit = limit
        self.window = window
        self._retry_redis_at = 0.0
        self._lock = threading.Lock()
        # address -> (failures, monotonic end of its window)
        self._local: dict[str, tuple[int, float]] = {}
        # one atomic step without MULTI (the app's Redis ACL allows EVAL/EVALSHA)
        self._count = self._r.register_script(_COUNT_SCRIPT)

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def _key(self, who: str) -> str:
        return f"{self._ns}:authfail:{who}"

    def _redis_ok(self) -> bool:
        return time.monotonic() >= self._retry_redis_at

    def _redis_failed(self, exc: Exception) -> None:
        self._retry_redis_at = time.monotonic() + _BACKOFF_SECONDS
        log.warning(
            "auth failure counter: Redis unavailable, counting in this process",
            extra={"error": type(exc).__name__},
        )

    def blocked_for(self, remote_addr: str | None) -> int:
        """Seconds this address must wait (0: not blocked)."""
        if not self.enabled:
            return 0
        who = client_key(remote_addr)
        if self._redis_ok():
            try:
                count, ttl_ms = (
                    self._r.pipeline(transaction=False)
                    .get(self._key(who))
                    .pttl(self._key(who))
                    .execute()
                )
            except redis.RedisError as exc:
                self._redis_failed(exc)
            else:
                if count is not None and int(count) >= self.limit:
                    return max(1, math.ceil((ttl_ms if ttl_ms > 0 else 1000) / 1000))
                return self._local_blocked_for(who)
        return self._local_blocked_for(who)

    def record(self, remote_addr: str | None) -> None:
        """Count one failed authentication of this address."""
        if not self.enabled:
            return
        who = client_key(remote_addr)
        if self._redis_ok():
            try:
                self._count(keys=[self._key(who)], args=[self.window])
                return
            except redis.RedisError as exc:
                self._redis_failed(exc)
        self._local_record(who)

    # -- per-process fallback -------------------------------------------------
    def _local_blocked_for(self, who: str) -> int:
        now = time.monotonic()
        with self._lock:
            entry = self._local.get(who)
            if entry is None:
                return 0
            count, until = entry
            if until <= now:
                del self._local[who]
                return 0
            return math.ceil(until - now) if count >= self.limit else 0

    def _local_record(self, who: str) -> None:
        now = time.monotonic()
        with self._lock:
            count, until = self._local.get(who, (0, now + self.window))
            if until <= now:
                count, until = 0, now + self.window
            self._local[who] = (count + 1, until)
            if len(self._local) > _MAX_LOCAL_ADDRESSES:
                self._prune(now)

    def _prune(self, now: float) -> None:
        for who in [w for w, (_, until) in self._local.items() if until <= now]:
            del self._local[who]
        while len(self._local) > _MAX_LOCAL_ADDRESSES:
            del self._local[next(iter(self._local))]
