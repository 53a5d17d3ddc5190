"""The ``vector-search`` command: serve, migrate, ingest, keys, check, config."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from vector_search import __version__
from vector_search.config import ConfigError, Settings, example_env_file, load_settings
from vector_search.embedding_columns import ColumnRegistryError
from vector_search.errors import DependencyUnavailable, EmbedderError


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(env_file=args.env_file)


def waitress_options(settings: Settings) -> dict[str, object]:
    """How ``serve`` runs waitress. X-Forwarded-* from the trusted proxies
    (TRUSTED_PROXIES, any number of load balancers) are applied by the app's own
    middleware (web/proxy.py), which drops them from every other peer; waitress's
    trusted_proxy would take only one address, and without one waitress 3 strips
    the headers itself unless told not to."""
    from vector_search.web.server import body_limit_options

    return {
        "host": settings.host,
        "port": settings.port,
        "threads": settings.threads,
        "connection_limit": settings.connection_limit,
        "channel_timeout": settings.channel_timeout,
        "ident": f"vector-search/{__version__}",
        "clear_untrusted_proxy_headers": False,
        # MAX_BODY_BYTES, as Flask's MAX_CONTENT_LENGTH: one limit, a JSON 413 above it
        **body_limit_options(settings.max_body_bytes),
    }


def cmd_serve(args: argparse.Namespace) -> int:
    from vector_search.logging_setup import configure_logging
    from vector_search.web.app import create_app
    from vector_search.web.server import serve

    overrides = {"PORT": str(args.port)} if args.port else {}
    if args.host:
        overrides["HOST"] = args.host
    settings = load_settings(env_file=args.env_file, overrides=overrides)
    configure_logging(settings.log_level)
    app = create_app(settings)
    options = waitress_options(settings)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)  # waitress closes its server and waits for busy threads

    signal.signal(signal.SIGTERM, _stop)
    logging.getLogger("vector_search").info(
        "serving",
        extra={"version": __version__, "host": settings.host, "port": settings.port},
    )
    try:
        serve(app, **options)
    finally:
        app.extensions["vector_search"].close()
        logging.getLogger("vector_search").info(
            "stopped", extra={"port": settings.port}
        )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from vector_search.db import connect_owner
    from vector_search.migrations import MigrationError, migrate

    settings = _settings(args)
    with connect_owner(settings, register=False) as conn:
        try:
            report = migrate(conn, settings)
        except MigrationError as exc:
            print(f"migrate: {exc}", file=sys.stderr)
            return 1
    for version in report.applied:
        print(f"applied migration {version}")
    if not report.applied:
        print(f"schema up to date (versions {', '.join(map(str, report.already))})")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    import redis

    from vector_search.cache import Cache, create_client
    from vector_search.db import connect_owner
    from vector_search.embedder import OllamaEmbedder
    from vector_search.ingest import Ingestor
    from vector_search.loaders import DocumentError

    settings = _settings(args)
    cache = Cache(create_client(settings), settings)
    warnings: list[str] = []

    def bump() -> None:
        try:
            cache.bump_generation()
        except redis.RedisError as exc:
            warnings.append(
                f"could not bump the cache generation in Redis ({type(exc).__name__}); cached "
                "search results may be stale until they expire (or clear the cache)"
            )

    embedder = OllamaEmbedder(settings)
    try:
        with connect_owner(settings) as conn:
            summary = Ingestor(conn, embedder, settings).ingest(
                [Path(p) for p in args.paths],
                prune=args.prune,
                source=args.source,
                on_changed=bump,
            )
    except DocumentError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    finally:
        embedder.close()
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for message in summary.refused:
        print(f"refused: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        defaulted = (
            f", {summary.documents_clearance_defaulted} given DEFAULT_CLEARANCE_LEVEL="
            f"{settings.default_clearance_level}"
            if summary.documents_clearance_defaulted
            else ""
        )
        print(
            f"documents: {summary.documents_seen} seen, {summary.documents_added} added, "
            f"{summary.documents_updated} updated, {summary.documents_unchanged} unchanged, "
            f"{summary.documents_pruned} pruned, {summary.documents_refused} refused"
            f"{defaulted}; chunks: {summary.chunks_written} written "
            f"({summary.chunks_embedded} embedded, {summary.chunks_reused} reused); "
            f"{summary.seconds:.2f} s"
        )
    # 2: done except the refused documents (named above); fix them and run again
    return 2 if summary.documents_refused else 0


def cmd_keys(args: argparse.Namespace) -> int:
    from vector_search.db import connect_owner
    from vector_search.keys import (
        Peppers,
        create_key,
        list_keys,
        pepper_usage,
        revoke_key,
        set_expiry,
    )

    settings = _settings(args)
    if args.keys_command in ("create", "expiry"):
        try:
            expires_at = _expiry_of(args, settings)
        except ValueError as exc:
            print(f"keys {args.keys_command}: {exc}", file=sys.stderr)
            return 2
    with connect_owner(settings, register=False) as conn:
        if args.keys_command == "expiry":
            if set_expiry(conn, args.id, expires_at):
                print(f"key {args.id} {_expiry_text(expires_at)}")
                return 0
            print(f"keys expiry: no active key with id {args.id}", file=sys.stderr)
            return 1
        if args.keys_command == "create":
            if args.count < 1:
                print("keys create: --count must be at least 1", file=sys.stderr)
                return 2
            owners = (
                [args.owner]
                if args.count == 1
                else [f"{args.owner}-{n}" for n in range(1, args.count + 1)]
            )
            created = []
            for owner in owners:
                try:
                    key_id, key = create_key(
                        conn,
                        args.role,
                        owner,
                        Peppers.from_settings(settings),
                        expires_at,
                    )
                except ValueError as exc:
                    print(f"keys create: {exc}", file=sys.stderr)
                    return 2
                created.append(
                    {
                        "id": key_id,
                        "key": key,
                        "role": args.role,
                        "owner": owner,
                        "expires_at": expires_at.isoformat() if expires_at else None,
                    }
                )
            for record in created:
                if args.json:
                    print(json.dumps(record))
                else:
                    print("\n".join(f"{k}: {v}" for k, v in record.items()))
            print(
                "Store the keys now: each is shown only once and stored only as a hash.",
                file=sys.stderr,
            )
            return 0
        if args.keys_command == "list":
            records = list_keys(conn)
            if args.json:
                print(
                    json.dumps(
                        [{**r.__dict__, "status": r.status()} for r in records],
                        default=str,
                    )
                )
            else:
                print(
                    "ID\tPREFIX\tROLE\tOWNER\tSTATUS\tCREATED\tEXPIRES\tREVOKED\tLAST_USED"
                )
                for r in records:
                    expires = (
                        f"{r.expires_at:%Y-%m-%d %H:%M}" if r.expires_at else "never"
                    )
                    print(
                        f"{r.id}\t{r.key_prefix}…\t{r.role}\t{r.owner}\t{r.status()}\t"
                        f"{r.created_at:%Y-%m-%d %H:%M}\t{expires}\t"
                        f"{r.revoked_at or '-'}\t{r.last_used_at or '-'}"
                    )
            return 0
        if args.keys_command == "peppers":
            usage = pepper_usage(conn, Peppers.from_settings(settings))
            if args.json:
                print(json.dumps(usage))
                return 0
            print("PEPPER\tFINGERPRINT\tACTIVE_KEYS\tKEY_IDS")
            print(
                f"current\t{usage['current']['pepper_id']}\t{usage['current']['active_keys']}\t-"
            )
            for n, prev in enumerate(usage["previous"], start=1):
                ids = ",".join(map(str, prev["key_ids"])) or "-"
                print(
                    f"previous {n}\t{prev['pepper_id']}\t{prev['active_keys']}\t{ids}"
                )
            for name in ("unknown", "unaccepted"):
                ids = ",".join(map(str, usage[name]["key_ids"])) or "-"
                print(f"{name}\t-\t{usage[name]['active_keys']}\t{ids}")
            return 0
        if revoke_key(conn, args.id):
            ttl = settings.api_key_cache_seconds
            print(
                f"revoked key {args.id}"
                + (
                    f"; instances that used it in the last {ttl} s accept it for up to "
                    f"{ttl} s more (API_KEY_CACHE_SECONDS)"
                    if ttl
                    else ""
                )
            )
            return 0
        print(f"keys revoke: no active key with id {args.id}", file=sys.stderr)
        return 1


def _expiry_of(args: argparse.Namespace, settings: Settings) -> datetime | None:
    """The expiry the options ask for; ``keys create`` without one: the role's default."""
    from vector_search.keys import default_expiry, parse_expiry_date, parse_lifetime

    if args.no_expiry:
        return None
    if args.expires_in:
        return datetime.now(UTC) + parse_lifetime(args.expires_in)
    if args.expires:
        return parse_expiry_date(args.expires)
    if args.keys_command == "create":
        return default_expiry(settings.key_expiry_days(args.role))
    raise ValueError("give --expires-in, --expires or --no-expiry")


def _expiry_text(expires_at: datetime | None) -> str:
    return f"expires {expires_at.isoformat()}" if expires_at else "does not expire"


def _add_expiry_options(parser: argparse.ArgumentParser, default: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--expires-in", metavar="LIFETIME", help=f"e.g. 90d, 12w, 1y, 36h ({default})"
    )
    group.add_argument(
        "--expires",
        metavar="DATE",
        help="last day the key works (UTC), e.g. 2027-06-30, or an ISO date-time with zone",
    )
    group.add_argument("--no-expiry", action="store_true", help="the key never expires")


def cmd_check(args: argparse.Namespace) -> int:
    from vector_search.check import CheckResult, run_checks

    settings = _settings(args)

    def emit(result: CheckResult) -> None:
        mark = "OK  " if result.ok else "FAIL"
        print(f"{mark} {result.name}: {result.detail}")
        if result.fix:
            print(f"     fix: {result.fix}")

    ok = run_checks(settings, emit)
    print("all checks passed" if ok else "some checks failed")
    return 0 if ok else 1


def cmd_reindex(args: argparse.Namespace) -> int:
    """Zero-downtime model change (docs/reindex.md); owner role."""
    import dataclasses

    from vector_search import reindex
    from vector_search.db import connect_owner
    from vector_search.embedder import for_model

    settings = _settings(args)
    # loading a model on Ollama for the first time can take longer than a query may
    slow = dataclasses.replace(
        settings, ollama_timeout=max(settings.ollama_timeout, 120.0)
    )

    def out(line: str) -> None:
        print(line, flush=True)

    command = args.reindex_command
    with connect_owner(settings) as conn:
        try:
            if command == "status":
                result = reindex.status(conn)
                print(
                    json.dumps(result.as_dict())
                    if args.json
                    else reindex.format_status(result)
                )
            elif command == "check":
                model = args.model or settings.embedding_model
                dimension = args.dimension or settings.embedding_dimension
                out(reindex.check_model(conn, model, dimension))
            elif command == "start":
                embedder = for_model(slow, args.model, args.dimension)
                try:
                    out(reindex.start(conn, embedder, out))
                finally:
                    embedder.close()
            elif command == "fill":
                column = reindex.target(conn)
                embedder = for_model(slow, column.model, column.dimension)
                try:
                    reindex.fill(
                        conn,
                        embedder,
                        args.batch_size or settings.embed_batch_size,
                        out,
                    )
                except KeyboardInterrupt:
                    print(
                        "interrupted: run vector-search reindex fill again to continue",
                        file=sys.stderr,
                    )
                    return 130
                finally:
                    embedder.close()
            elif command == "index":
                out(reindex.build_index(conn, out, args.maintenance_work_mem))
            elif command == "finish":
                out(reindex.finish(conn, args.force, out))
            else:
                out(reindex.abort(conn, args.force, out))
        except reindex.ReindexError as exc:
            print(f"reindex {command}: {exc}", file=sys.stderr)
            return 1
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.example:
        sys.stdout.write(example_env_file())
        return 0
    print(json.dumps(_settings(args).public_view(), indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vector-search", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"vector-search {__version__}"
    )
    parser.add_argument(
        "--env-file",
        default=None,
        help="env file to read (default: $VECTOR_SEARCH_ENV_FILE or /etc/vector-search/vector-search.env)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API with waitress")
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--host", default=None)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply schema migrations (owner role)").set_defaults(
        func=cmd_migrate
    )

    ingest = sub.add_parser(
        "ingest",
        help="ingest documents (owner role)",
        description="Ingest documents. A document without clearance_level is refused "
        "(named on stderr, exit status 2; the others are ingested) unless "
        "DEFAULT_CLEARANCE_LEVEL gives one.",
    )
    ingest.add_argument("paths", nargs="+", help="files or directories")
    ingest.add_argument(
        "--prune", action="store_true", help="delete documents no longer present"
    )
    ingest.add_argument(
        "--source", default=None, help="source name (default: the path)"
    )
    ingest.add_argument("--json", action="store_true", help="print the summary as JSON")
    ingest.set_defaults(func=cmd_ingest)

    keys = sub.add_parser("keys", help="manage API keys (owner role)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create")
    create.add_argument(
        "--role", required=True, choices=["student", "staff", "academic", "admin"]
    )
    create.add_argument("--owner", required=True)
    create.add_argument(
        "--count",
        type=int,
        default=1,
        help="create N keys, owners OWNER-1..OWNER-N (one JSON object per line)",
    )
    create.add_argument("--json", action="store_true")
    _add_expiry_options(
        create, "default: API_KEY_EXPIRY_DAYS_<ROLE>, e.g. 365 days for students"
    )
    expiry = keys_sub.add_parser(
        "expiry", help="change an active key's expiry (or make it never expire)"
    )
    expiry.add_argument("id", type=int)
    _add_expiry_options(expiry, "from now")
    lst = keys_sub.add_parser("list")
    lst.add_argument("--json", action="store_true")
    peppers = keys_sub.add_parser(
        "peppers",
        help="active keys per accepted pepper: a previous pepper can go once none needs it",
    )
    peppers.add_argument("--json", action="store_true")
    revoke = keys_sub.add_parser("revoke")
    revoke.add_argument("id", type=int)
    keys.set_defaults(func=cmd_keys)

    sub.add_parser("check", help="verify configuration and connectivity").set_defaults(
        func=cmd_check
    )

    reindex = sub.add_parser(
        "reindex",
        help="change the embedding model or dimension without downtime (owner role; docs/reindex.md)",
    )
    reindex_sub = reindex.add_subparsers(dest="reindex_command", required=True)
    r_start = reindex_sub.add_parser(
        "start", help="add the column for the new model beside the current one"
    )
    r_start.add_argument("--model", required=True, help="Ollama model name")
    r_start.add_argument(
        "--dimension", required=True, type=int, help="the model's dimension"
    )
    r_fill = reindex_sub.add_parser(
        "fill", help="embed every chunk that lacks the new embedding (resumable)"
    )
    r_fill.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="chunks per embedding request and transaction (default EMBED_BATCH_SIZE)",
    )
    r_index = reindex_sub.add_parser(
        "index", help="build the new column's HNSW index concurrently"
    )
    r_index.add_argument(
        "--maintenance-work-mem",
        default=None,
        help="maintenance_work_mem for the build (e.g. 2GB); default: the server's",
    )
    r_status = reindex_sub.add_parser(
        "status", help="columns, models, progress, index and connected instances"
    )
    r_status.add_argument("--json", action="store_true")
    r_check = reindex_sub.add_parser(
        "check",
        help="exit 0 if instances of this model can search now (default: the configured one)",
    )
    r_check.add_argument("--model", default=None)
    r_check.add_argument("--dimension", type=int, default=None)
    for name, text in (
        ("finish", "drop the old column; the new one becomes embedding"),
        ("abort", "drop the new column; nothing else changes"),
    ):
        step = reindex_sub.add_parser(name, help=text)
        step.add_argument(
            "--force",
            action="store_true",
            help="skip the check for connected instances still using that column's model",
        )
    reindex.set_defaults(func=cmd_reindex)

    config = sub.add_parser(
        "config", help="print the effective settings (secrets masked)"
    )
    config.add_argument(
        "--example", action="store_true", help="print an env file of the defaults"
    )
    config.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (DependencyUnavailable, EmbedderError, ColumnRegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
