"""Settings from the environment and one env file; secrets may come from files.

Every setting has a documented default (see ``SETTINGS``). Process environment
variables win over the env file. ``NAME_FILE`` reads a secret from a file.
Invalid values raise :class:`ConfigError` naming the setting.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from vector_search import retrievers

DEFAULT_ENV_FILE = "/etc/vector-search/vector-search.env"
ENV_FILE_VARIABLE = "VECTOR_SEARCH_ENV_FILE"
SECRET_SETTINGS = {"DATABASE_PASSWORD", "DATABASE_OWNER_PASSWORD", "REDIS_PASSWORD"}


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the setting."""


@dataclass(frozen=True)
class Spec:
    name: str
    default: str
    help: str
    parse: Callable[[str, str], Any]


def _int(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _float(lo: float, hi: float) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _str(name: str, raw: str) -> str:
    return raw.strip()


def _nonempty(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{name} must not be empty")
    return raw.strip()


_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _ident(name: str, raw: str) -> str:
    value = raw.strip()
    if value and not _IDENT.match(value):
        raise ConfigError(f"{name} must be a lower-case SQL identifier, got {raw!r}")
    return value


def _choice(*options: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ConfigError(
                f"{name} must be one of {', '.join(options)}, got {raw!r}"
            )
        return value

    return parse


def _retriever_help() -> str:
    """LEXICAL_RETRIEVER's help: each registered retriever and its summary."""
    described = [f"{name} ({cls.summary})" for name, cls in retrievers.REGISTRY.items()]
    listed = ", ".join(described[:-1]) + " or " if len(described) > 1 else ""
    return f"lexical retriever: {listed}{described[-1]}"


def _url(*schemes: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().rstrip("/")
        if not any(value.startswith(f"{s}://") for s in schemes):
            raise ConfigError(
                f"{name} must be a URL starting with {' or '.join(schemes)}://"
            )
        return value

    return parse


def _prepare(name: str, raw: str) -> int | None:
    if raw.strip().lower() in {"", "none", "off"}:
        return None
    return _int(0, 1_000_000)(name, raw)


def _words(name: str, raw: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in re.split(r"[,\s]+", raw.strip()) if w)


def _networks(name: str, raw: str) -> tuple[str, ...]:
    """Addresses or CIDRs, normalised (``10.0.0.5`` -> ``10.0.0.5/32``)."""
    out: list[str] = []
    for word in re.split(r"[,\s]+", raw.strip()):
        if not word:
            continue
        try:
            network = ipaddress.ip_network(word, strict=False)
        except ValueError:
            raise ConfigError(
                f"{name}: {word!r} is not an IP address or CIDR network"
            ) from None
        if str(network) not in out:
            out.append(str(network))
    return tuple(out)


REFUSE = "refuse"


def _clearance_default(name: str, raw: str) -> int | None:
    if raw.strip().lower() == REFUSE:
        return None
    return _int(1, 5)(name, raw)


NO_PEPPER = "none"


def _peppers(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated peppers; ``none`` stands for keys hashed without one."""
    out: list[str] = []
    for word in raw.split(","):
        word = word.strip()
        if not word:
            continue
        if any(c.isspace() for c in word):
            raise ConfigError(f"{name}: a pepper must not contain whitespace")
        value = "" if word == NO_PEPPER else word
        if value not in out:
            out.append(value)
    return tuple(out)


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def _proxies(name: str, raw: str) -> tuple[str, ...]:
    """Addresses, CIDR networks or host names (resolved when the app starts),
    comma- or space-separated; normalised (an address becomes a /32 or /128)."""
    out: list[str] = []
    for word in re.split(r"[,\s]+", raw.strip()):
        if not word:
            continue
        try:
            entry = str(ipaddress.ip_network(word.strip("[]"), strict=False))
        except ValueError:
            entry = word.lower().rstrip(".")
            if not _HOSTNAME.match(entry) or entry.replace(".", "").isdigit():
                raise ConfigError(
                    f"{name} must list IP addresses, CIDR networks (e.g. 10.20.0.51, "
                    f"10.20.0.0/24) or host names, got {word!r}"
                ) from None
        if entry not in out:
            out.append(entry)
    return tuple(out)


PROXY_HEADERS = ("x-forwarded-for", "x-forwarded-proto")


def _proxy_headers(name: str, raw: str) -> tuple[str, ...]:
    words = _words(name, raw)
    unknown = [w for w in words if w not in PROXY_HEADERS]
    if unknown:
        raise ConfigError(
            f"{name}: only {' and '.join(PROXY_HEADERS)} are supported, got {', '.join(unknown)}"
        )
    return words


SETTINGS: tuple[Spec, ...] = (
    # HTTP server
    Spec("HOST", "127.0.0.1", "address waitress binds to", _nonempty),
    Spec("PORT", "8000", "port (serve --port overrides it)", _int(1, 65535)),
    Spec(
        "THREADS",
        "4",
        "waitress worker threads (the DB pool is sized to this)",
        _int(1, 256),
    ),
    Spec("CONNECTION_LIMIT", "100", "waitress connection_limit", _int(1, 100_000)),
    Spec("CHANNEL_TIMEOUT", "30", "waitress channel_timeout, seconds", _int(1, 3600)),
    Spec(
        "TRUSTED_PROXIES",
        "",
        "addresses or CIDR networks of the reverse proxies (every load balancer) whose "
        "X-Forwarded-For/-Proto count, comma- or space-separated (host names are resolved at "
        "start); the client is the rightmost untrusted X-Forwarded-For hop; from any other peer "
        "the headers are dropped",
        _proxies,
    ),
    Spec(
        "TRUSTED_PROXY",
        "",
        "deprecated name of TRUSTED_PROXIES (same format); both lists are trusted",
        _proxies,
    ),
    Spec(
        "TRUSTED_PROXY_HEADERS",
        "x-forwarded-for x-forwarded-proto",
        "headers taken from a trusted proxy: x-forwarded-for and/or x-forwarded-proto",
        _proxy_headers,
    ),
    Spec(
        "MAX_BODY_BYTES",
        "65536",
        "largest accepted request body in bytes, for waitress (max_request_body_size) and Flask "
        "alike: a larger one gets a JSON 413. Keep nginx's client_max_body_size equal "
        "(64 KiB holds the largest valid search request)",
        _int(1024, 10**7),
    ),
    Spec(
        "LOG_LEVEL",
        "INFO",
        "DEBUG, INFO, WARNING or ERROR",
        _choice("debug", "info", "warning", "error"),
    ),
    # PostgreSQL (runtime role, through PgBouncer in production)
    Spec(
        "DATABASE_HOST",
        "127.0.0.1",
        "PostgreSQL or PgBouncer host (or socket dir)",
        _nonempty,
    ),
    Spec("DATABASE_PORT", "5432", "PostgreSQL or PgBouncer port", _int(1, 65535)),
    Spec("DATABASE_NAME", "vector_search", "database name", _nonempty),
    Spec(
        "DATABASE_USER",
        "vector_search_app",
        "runtime role the API connects as",
        _nonempty,
    ),
    Spec(
        "DATABASE_PASSWORD",
        "",
        "runtime role password (or DATABASE_PASSWORD_FILE)",
        _str,
    ),
    Spec(
        "DATABASE_SSLMODE",
        "prefer",
        "libpq sslmode",
        _choice("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    ),
    Spec(
        "DATABASE_CONNECT_TIMEOUT",
        "5",
        "seconds to wait for a new connection",
        _int(1, 120),
    ),
    Spec("DATABASE_POOL_MIN", "1", "connections kept open", _int(0, 256)),
    Spec("DATABASE_POOL_MAX", "0", "pool size; 0 means THREADS", _int(0, 256)),
    Spec(
        "DATABASE_POOL_TIMEOUT",
        "5",
        "seconds a request waits for a pooled connection",
        _float(0.1, 120),
    ),
    Spec(
        "DATABASE_RETRY_SECONDS",
        "5",
        "seconds an API request keeps retrying its (repeatable) database work on a fresh "
        "connection when the connection is lost or refused, e.g. while PostgreSQL or "
        "PgBouncer restarts; then 503 + Retry-After. 0: no retry",
        _float(0, 60),
    ),
    Spec(
        "DATABASE_STATEMENT_TIMEOUT_MS",
        "5000",
        "per-transaction statement_timeout (SET LOCAL)",
        _int(0, 3_600_000),
    ),
    Spec(
        "DATABASE_PREPARE_THRESHOLD",
        "5",
        "psycopg prepare_threshold; 'none' disables server-side prepared statements (PgBouncer < 1.22)",
        _prepare,
    ),
    # PostgreSQL owner role (migrate, ingest, keys)
    Spec(
        "DATABASE_OWNER_USER",
        "vector_search_owner",
        "role that owns the schema; used by migrate, ingest and keys",
        _nonempty,
    ),
    Spec(
        "DATABASE_OWNER_PASSWORD",
        "",
        "owner role password (or DATABASE_OWNER_PASSWORD_FILE)",
        _str,
    ),
    Spec(
        "DATABASE_OWNER_HOST",
        "",
        "host for owner connections (default DATABASE_HOST; bypass PgBouncer)",
        _str,
    ),
    Spec(
        "DATABASE_OWNER_PORT",
        "0",
        "port for owner connections (0: DATABASE_PORT)",
        _int(0, 65535),
    ),
    Spec(
        "DATABASE_RUNTIME_ROLE",
        "",
        "role that migrate grants runtime privileges to (default DATABASE_USER; '-' for none)",
        _str,
    ),
    Spec(
        "TEXT_SEARCH_CONFIG",
        "english",
        "PostgreSQL text search configuration of the tsvector column",
        _ident,
    ),
    # Embeddings
    Spec(
        "OLLAMA_URL",
        "http://127.0.0.1:11434",
        "Ollama base URL (the /api/embed endpoint is appended)",
        _url("http", "https"),
    ),
    Spec("EMBEDDING_MODEL", "all-minilm", "Ollama model name", _nonempty),
    Spec(
        "EMBEDDING_DIMENSION",
        "384",
        "vector dimension; must equal the model's (check verifies)",
        _int(1, 16000),
    ),
    Spec("OLLAMA_TIMEOUT", "10", "seconds per embedding request", _float(0.1, 600)),
    Spec(
        "OLLAMA_KEEP_ALIVE",
        "-1",
        "keep_alive sent with each request (-1 keeps the model loaded)",
        _str,
    ),
    Spec(
        "EMBED_BATCH_SIZE",
        "32",
        "texts per /api/embed call during ingest",
        _int(1, 1024),
    ),
    Spec(
        "CHUNK_TOKENS",
        "200",
        "chunk size in (word-piece-ish) tokens, below the embedder's context",
        _int(16, 8192),
    ),
    Spec("CHUNK_OVERLAP", "40", "tokens shared by consecutive chunks", _int(0, 4096)),
    # Redis
    Spec(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis for cache and rate limits",
        _url("redis", "rediss", "unix"),
    ),
    Spec(
        "REDIS_PASSWORD",
        "",
        "Redis password (or REDIS_PASSWORD_FILE); overrides one in the URL",
        _str,
    ),
    Spec(
        "REDIS_SOCKET_TIMEOUT",
        "0.5",
        "seconds; a slow Redis degrades to no cache",
        _float(0.01, 30),
    ),
    Spec(
        "CACHE_ENABLED",
        "true",
        "cache query embeddings and search responses in Redis",
        _bool,
    ),
    Spec(
        "CACHE_NAMESPACE",
        "vector-search",
        "prefix of every cache key this service writes",
        _nonempty,
    ),
    Spec(
        "CACHE_SEARCH_TTL",
        "900",
        "seconds a search response is cached",
        _int(1, 86400 * 7),
    ),
    Spec(
        "CACHE_EMBEDDING_TTL",
        "86400",
        "seconds a query embedding is cached",
        _int(1, 86400 * 30),
    ),
    Spec(
        "CACHE_MEMORY_CEILING",
        "0.8",
        "fraction of Redis maxmemory above which the cache writes nothing, leaving "
        "the rest to rate-limit and auth-failure counters (Redis runs noeviction); "
        "1.0: no ceiling",
        _float(0.1, 1.0),
    ),
    Spec(
        "HEALTH_CACHE_TTL",
        "5",
        "seconds the deep /health result is reused (0: never)",
        _float(0, 3600),
    ),
    Spec(
        "HEALTH_DETAIL_NETWORKS",
        "127.0.0.0/8 ::1",
        "addresses or CIDRs (comma/space-separated) whose requests get the health endpoints' "
        "detail (components, schema, model, errors) and are exempt from HEALTH_RATE_LIMIT: "
        "monitoring, load balancers, loopback. Others get the status (and version) only, "
        "unless they send an admin API key",
        _networks,
    ),
    Spec(
        "HEALTH_RATE_LIMIT",
        "30",
        "requests per minute per client address to the health endpoints, from outside "
        "HEALTH_DETAIL_NETWORKS (0: no limit)",
        _int(0, 100_000),
    ),
    # Access and limits
    Spec("RATE_LIMIT_ENABLED", "true", "enforce per-role rate limits", _bool),
    Spec(
        "ANONYMOUS_ENABLED",
        "false",
        "allow searches without an API key (clearance 1 documents only); off unless chosen",
        _bool,
    ),
    Spec(
        "ANONYMOUS_RATE_LIMIT",
        "10",
        "anonymous searches per minute per client IP",
        _int(1, 100_000),
    ),
    Spec(
        "ANONYMOUS_MAX_RESULTS",
        "10",
        "most results an anonymous search returns",
        _int(1, 1000),
    ),
    Spec(
        "API_KEY_PEPPER",
        "",
        "optional secret mixed into API key hashes (or API_KEY_PEPPER_FILE); new keys and rehashed keys use it",
        _str,
    ),
    Spec(
        "API_KEY_PEPPER_PREVIOUS",
        "",
        "earlier peppers still accepted during a rotation, comma-separated ('none': keys hashed without a pepper)",
        _peppers,
    ),
    Spec(
        "API_KEY_REHASH",
        "true",
        "rewrite the hash of a key found with a previous pepper using API_KEY_PEPPER",
        _bool,
    ),
    Spec(
        "API_KEY_CACHE_SECONDS",
        "5",
        "seconds each process reuses a successful API key lookup (0: look every key up on every "
        "request); a revoked key, or one whose expiry was brought forward, still works for up to "
        "this long on instances that used it just before; expiry itself is checked on every request",
        _int(0, 300),
    ),
    Spec(
        "AUTH_FAILURE_LIMIT",
        "20",
        "failed API key authentications a client address (IPv6: its /64) may have per "
        "AUTH_FAILURE_WINDOW before its keyed requests get 429 without a key lookup (0: no limit)",
        _int(0, 1_000_000),
    ),
    Spec(
        "AUTH_FAILURE_WINDOW",
        "300",
        "seconds over which failed authentications are counted (Redis; per process while Redis is down)",
        _int(1, 86400),
    ),
    Spec(
        "API_KEY_EXPIRY_DAYS_STUDENT",
        "365",
        "default lifetime in days of a new student key (keys create; 0: no expiry): one academic year",
        _int(0, 36500),
    ),
    Spec(
        "API_KEY_EXPIRY_DAYS_STAFF",
        "365",
        "default lifetime in days of a new staff key (0: no expiry): reviewed yearly",
        _int(0, 36500),
    ),
    Spec(
        "API_KEY_EXPIRY_DAYS_ACADEMIC",
        "365",
        "default lifetime in days of a new academic key (0: no expiry): reviewed yearly",
        _int(0, 36500),
    ),
    Spec(
        "API_KEY_EXPIRY_DAYS_ADMIN",
        "90",
        "default lifetime in days of a new admin key (0: no expiry): the most powerful keys live shortest",
        _int(0, 36500),
    ),
    Spec(
        "API_KEY_EXPIRY_WARNING_DAYS",
        "14",
        "active keys expiring within this many days are counted in vector_search_api_keys_expiring_soon",
        _int(1, 3650),
    ),
    Spec(
        "API_KEY_STATS_TTL",
        "300",
        "seconds each process reuses its key expiry counts for /metrics (one small query per TTL)",
        _int(10, 86400),
    ),
    # Search
    Spec(
        "SEARCH_CANDIDATES",
        "100",
        "candidates taken from each retriever before fusion",
        _int(10, 10_000),
    ),
    Spec("RRF_K", "60", "Reciprocal Rank Fusion constant", _int(1, 1000)),
    Spec(
        "LEXICAL_RETRIEVER",
        "bm25",
        _retriever_help(),
        _choice(*retrievers.names()),
    ),
    Spec(
        "FUSION",
        "weighted",
        "how the vector and lexical lists combine: rrf (each chunk: cosine averaged with normalised RRF) "
        "or weighted (each document: LEXICAL_WEIGHT * its best lexical score / the best of the query + (1 - LEXICAL_WEIGHT) * its best cosine)",
        _choice("rrf", "weighted"),
    ),
    Spec(
        "LEXICAL_WEIGHT",
        "0.25",
        "weight of the normalised lexical score in FUSION=weighted",
        _float(0, 1),
    ),
    Spec(
        "FEEDBACK_CHUNKS",
        "3",
        "pseudo-relevance feedback: re-rank with the query vector moved towards the mean of "
        "the first pass's top N chunks (0 = off)",
        _int(0, 50),
    ),
    Spec(
        "FEEDBACK_WEIGHT",
        "1.0",
        "weight of the feedback chunks' mean vector added to the query vector",
        _float(0, 10),
    ),
    Spec("BM25_K1", "1.2", "BM25 term-frequency saturation k1", _float(0, 10)),
    Spec("BM25_B", "0.75", "BM25 length normalisation b", _float(0, 1)),
    Spec(
        "BM25_MAX_CANDIDATES",
        "2000",
        "most chunks BM25 scores per query (rarest query lexemes first)",
        _int(10, 1_000_000),
    ),
    Spec(
        "DEFAULT_CLEARANCE_LEVEL",
        "refuse",
        "clearance given to an ingested document whose metadata has none: 'refuse' (the "
        "document is not ingested and the run names it; the others are) or 1-5 (choose a "
        "restrictive level: a missing clearance must not make a document public)",
        _clearance_default,
    ),
    Spec(
        "DEFAULT_SIMILARITY_THRESHOLD",
        "0.2",
        "default minimum cosine similarity",
        _float(-1, 1),
    ),
)
SECRET_SETTINGS.update({"API_KEY_PEPPER", "API_KEY_PEPPER_PREVIOUS"})


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    threads: int
    connection_limit: int
    channel_timeout: int
    trusted_proxies: tuple[str, ...]
    trusted_proxy: tuple[str, ...]
    trusted_proxy_headers: tuple[str, ...]
    max_body_bytes: int
    log_level: str
    database_host: str
    database_port: int
    database_name: str
    database_user: str
    database_password: str
    database_sslmode: str
    database_connect_timeout: int
    database_pool_min: int
    database_pool_max: int
    database_pool_timeout: float
    database_retry_seconds: float
    database_statement_timeout_ms: int
    database_prepare_threshold: int | None
    database_owner_user: str
    database_owner_password: str
    database_owner_host: str
    database_owner_port: int
    database_runtime_role: str
    text_search_config: str
    ollama_url: str
    embedding_model: str
    embedding_dimension: int
    ollama_timeout: float
    ollama_keep_alive: str
    embed_batch_size: int
    chunk_tokens: int
    chunk_overlap: int
    redis_url: str
    redis_password: str
    redis_socket_timeout: float
    cache_enabled: bool
    cache_namespace: str
    cache_search_ttl: int
    cache_embedding_ttl: int
    cache_memory_ceiling: float
    health_cache_ttl: float
    health_detail_networks: tuple[str, ...]
    health_rate_limit: int
    rate_limit_enabled: bool
    anonymous_enabled: bool
    anonymous_rate_limit: int
    anonymous_max_results: int
    api_key_pepper: str
    api_key_pepper_previous: tuple[str, ...]
    api_key_rehash: bool
    api_key_cache_seconds: int
    auth_failure_limit: int
    auth_failure_window: int
    api_key_expiry_days_student: int
    api_key_expiry_days_staff: int
    api_key_expiry_days_academic: int
    api_key_expiry_days_admin: int
    api_key_expiry_warning_days: int
    api_key_stats_ttl: int
    search_candidates: int
    rrf_k: int
    fusion: str
    lexical_weight: float
    feedback_chunks: int
    feedback_weight: float
    lexical_retriever: str
    bm25_k1: float
    bm25_b: float
    bm25_max_candidates: int
    default_clearance_level: int | None
    default_similarity_threshold: float

    @property
    def pool_max(self) -> int:
        return self.database_pool_max or self.threads

    @property
    def proxies(self) -> tuple[str, ...]:
        """Every trusted proxy: TRUSTED_PROXIES plus the deprecated TRUSTED_PROXY."""
        return self.trusted_proxies + tuple(
            n for n in self.trusted_proxy if n not in self.trusted_proxies
        )

    def key_expiry_days(self, role: str) -> int:
        """Default lifetime of a new key of this role in days (0: no expiry)."""
        value = getattr(self, f"api_key_expiry_days_{role}", None)
        if value is None:
            raise ValueError(f"unknown role {role!r}")
        return int(value)

    @property
    def runtime_role(self) -> str:
        role = self.database_runtime_role or self.database_user
        return "" if role == "-" else role

    def conninfo(self, owner: bool = False) -> str:
        from psycopg.conninfo import make_conninfo

        if owner:
            host = self.database_owner_host or self.database_host
            port = self.database_owner_port or self.database_port
            user, password = self.database_owner_user, self.database_owner_password
        else:
            host, port = self.database_host, self.database_port
            user, password = self.database_user, self.database_password
        params: dict[str, Any] = {
            "host": host,
            "port": port,
            "dbname": self.database_name,
            "user": user,
            "sslmode": self.database_sslmode,
            "connect_timeout": self.database_connect_timeout,
            "application_name": "vector-search",
        }
        if password:
            params["password"] = password
        return make_conninfo("", **params)

    def public_view(self) -> dict[str, Any]:
        """Every setting with secrets masked (for ``check``)."""
        out: dict[str, Any] = {}
        for spec in SETTINGS:
            value = getattr(self, spec.name.lower())
            out[spec.name] = "***" if spec.name in SECRET_SETTINGS and value else value
        return out


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=value`` lines (``#`` comments, optional quotes, optional ``export``)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read env file {path}: {exc.strerror}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ConfigError(f"{path}:{number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in {"'", '"'}:
            value = value[1:-1]
        values[key] = value
    return values


def _raw_values(environ: Mapping[str, str], env_file: str | None) -> dict[str, str]:
    explicit = env_file or environ.get(ENV_FILE_VARIABLE, "")
    path = Path(explicit or DEFAULT_ENV_FILE)
    merged: dict[str, str] = {}
    if explicit or path.exists():
        merged.update(read_env_file(path))
    merged.update({k: v for k, v in environ.items()})
    return merged


def _resolve(name: str, raw: Mapping[str, str]) -> str | None:
    file_key = f"{name}_FILE"
    if raw.get(file_key):
        if raw.get(name):
            raise ConfigError(f"set either {name} or {file_key}, not both")
        try:
            return Path(raw[file_key]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{file_key}: cannot read {raw[file_key]}: {exc.strerror}"
            ) from None
    return raw.get(name)


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    raw = _raw_values(os.environ if environ is None else environ, env_file)
    if overrides:
        raw.update(overrides)
    values: dict[str, Any] = {}
    for spec in SETTINGS:
        given = _resolve(spec.name, raw)
        values[spec.name.lower()] = spec.parse(
            spec.name, spec.default if given is None else given
        )
    settings = Settings(**values)
    _cross_check(settings)
    return settings


def _cross_check(settings: Settings) -> None:
    if settings.chunk_overlap >= settings.chunk_tokens:
        raise ConfigError("CHUNK_OVERLAP must be smaller than CHUNK_TOKENS")
    if settings.database_pool_min > settings.pool_max:
        raise ConfigError(
            "DATABASE_POOL_MIN must not exceed DATABASE_POOL_MAX (or THREADS)"
        )
    if settings.runtime_role and not _IDENT.match(settings.runtime_role):
        raise ConfigError("DATABASE_RUNTIME_ROLE must be a lower-case SQL identifier")


def example_env_file() -> str:
    """The documented defaults, as an env file."""
    lines = [
        "# vector-search settings: environment variables override this file.",
        "# NAME_FILE=/path reads a secret from a file instead of NAME.",
        "",
    ]
    for spec in SETTINGS:
        lines.append(f"# {spec.help}")
        lines.append(f"{spec.name}={spec.default}")
    return "\n".join(lines) + "\n"


assert {f.name for f in fields(Settings)} == {s.name.lower() for s in SETTINGS}
