"""A short-lived in-process cache of successful API key lookups.

A cached response costs a few milliseconds, and the key lookup (a transaction
calling ``api_key_lookup`` in PostgreSQL) was a large share of them (bench
section 6). Each process therefore remembers the keys it found *active* for
API_KEY_CACHE_SECONDS (0: off):

- keyed by the key's hash with the current pepper (``keys.hash_key``), never
  the key itself;
- only successful lookups: an unknown, revoked or expired key is looked up
  every time, so a new key works at once and a refusal is never remembered;
- expiry is still enforced at use time: an entry whose key has expired since
  it was stored is dropped and the key looked up again (the database refuses
  it as expired);
- revoking a key (``keys revoke``) or shortening its expiry reaches the
  processes that cached it within API_KEY_CACHE_SECONDS;
- bounded (``MAX_ENTRIES``, least recently used out first);
- last use is still stamped by ``api_key_lookup`` (at most once a minute per
  key), now only on the lookups that miss this cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from time import monotonic

from vector_search.keys import KeyLookup, hash_key


@dataclass(frozen=True)
class _Entry:
    found: KeyLookup
    until: float  # monotonic


class KeyCache:
    MAX_ENTRIES = 10_000

    def __init__(
        self,
        seconds: float,
        record: Callable[[str], None] | None = None,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.seconds = seconds
        self._record = record or (lambda result: None)
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(
        self, key: str, pepper: str, lookup: Callable[[], KeyLookup]
    ) -> KeyLookup:
        """The cached outcome of an active key, else ``lookup()`` (stored when active)."""
        if self.seconds <= 0:
            return lookup()
        digest = hash_key(key, pepper)
        now = monotonic()
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                if entry.until > now and not _expired(entry.found):
                    self._entries.move_to_end(digest)
                    self._record("hit")
                    return entry.found
                del self._entries[digest]
        self._record("miss")
        found = lookup()
        if found.ok:
            with self._lock:
                self._entries[digest] = _Entry(found, now + self.seconds)
                self._entries.move_to_end(digest)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return found

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _expired(found: KeyLookup) -> bool:
    return found.expires_at is not None and found.expires_at <= datetime.now(UTC)
