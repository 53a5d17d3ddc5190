#!/usr/bin/python3
"""Write pgBackRest's backup state as node_exporter textfile metrics.

Installed by the pgbackrest role as /usr/local/lib/vector-search/pgbackrest-metrics
and run by pgbackrest-metrics.service (after every backup and by a timer):

    pgbackrest-metrics --stanza main --output /var/lib/prometheus/node-exporter/pgbackrest.prom

It runs `pgbackrest info --output=json` (as --run-as, postgres, when started
as root) and writes the file atomically (a hidden temporary file in the same
directory, then rename), so the node exporter never reads half a file. The
metric the alerts use is pgbackrest_last_successful_backup_timestamp_seconds:
only completed backups are listed by `pgbackrest info`, so the newest of each
type is the last successful one. A failing `info` still writes the file, with
pgbackrest_info_success 0 and no backup timestamps.

Standard library only: it runs with the system's python3.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import subprocess
import sys
import tempfile
import time

BACKUP_TYPES = ("full", "diff", "incr")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(stanza: str, info: list | None, now: float) -> str:
    """Metrics text for one stanza from the parsed `pgbackrest info` JSON.

    ``info`` is None when the command failed.
    """
    lines: list[str] = []

    def metric(name: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            text = ",".join(f'{k}="{_label(str(v))}"' for k, v in labels.items())
            number = (
                str(int(value)) if float(value).is_integer() else repr(float(value))
            )
            lines.append(f"{name}{{{text}}} {number}" if text else f"{name} {number}")

    entry = None
    if info is not None:
        entry = next((s for s in info if s.get("name") == stanza), None)
    base = {"stanza": stanza}
    metric(
        "pgbackrest_info_success",
        "1 when `pgbackrest info` answered for the stanza.",
        [(base, 1 if entry is not None else 0)],
    )
    if entry is not None:
        status = entry.get("status", {})
        metric(
            "pgbackrest_stanza_status_code",
            "pgBackRest's status code of the stanza (0 ok, 2 no valid backups, other: see pgbackrest info).",
            [(base, status.get("code", -1))],
        )
        backups = entry.get("backup", [])
        newest: dict[str, dict] = {}
        counts = dict.fromkeys(BACKUP_TYPES, 0)
        for backup in backups:
            kind = backup.get("type", "unknown")
            counts[kind] = counts.get(kind, 0) + 1
            stop = backup.get("timestamp", {}).get("stop") or 0
            if stop >= (newest.get(kind, {}).get("timestamp", {}).get("stop") or 0):
                newest[kind] = backup
        metric(
            "pgbackrest_backups",
            "Backups of each type in the repository.",
            [({**base, "type": k}, v) for k, v in sorted(counts.items())],
        )
        metric(
            "pgbackrest_last_successful_backup_timestamp_seconds",
            "Unix time the newest completed backup of each type finished.",
            [
                ({**base, "type": k}, b["timestamp"]["stop"])
                for k, b in sorted(newest.items())
            ],
        )
        metric(
            "pgbackrest_last_backup_duration_seconds",
            "How long the newest backup of each type took.",
            [
                ({**base, "type": k}, b["timestamp"]["stop"] - b["timestamp"]["start"])
                for k, b in sorted(newest.items())
            ],
        )
        metric(
            "pgbackrest_last_backup_repository_bytes",
            "Bytes the newest backup of each type added to the repository (compressed).",
            [
                (
                    {**base, "type": k},
                    b.get("info", {}).get("repository", {}).get("delta", 0),
                )
                for k, b in sorted(newest.items())
            ],
        )
        metric(
            "pgbackrest_last_backup_database_bytes",
            "Size of the database in the newest backup of each type.",
            [
                ({**base, "type": k}, b.get("info", {}).get("size", 0))
                for k, b in sorted(newest.items())
            ],
        )
    metric(
        "pgbackrest_metrics_timestamp_seconds",
        "Unix time this file was written.",
        [(base, int(now))],
    )
    return "\n".join(lines) + "\n"


def read_info(stanza: str, run_as: str) -> list | None:
    command = [
        "pgbackrest",
        f"--stanza={stanza}",
        "--output=json",
        "--log-level-console=error",
        "--log-level-file=off",
        "info",
    ]
    kwargs: dict = {}
    if os.geteuid() == 0 and run_as:
        user = pwd.getpwnam(run_as)
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd="/",
            **kwargs,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"pgbackrest info failed: {exc}", file=sys.stderr)
        return None
    if result.returncode != 0:
        print(f"pgbackrest info failed: {result.stderr.strip()}", file=sys.stderr)
        return None
    try:
        return json.loads(result.stdout)
    except ValueError as exc:
        print(f"pgbackrest info printed no JSON: {exc}", file=sys.stderr)
        return None


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".pgbackrest-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stanza", required=True)
    parser.add_argument("--output", required=True, help="the .prom file to write")
    parser.add_argument(
        "--run-as", default="postgres", help="user for pgbackrest when run as root"
    )
    args = parser.parse_args(argv)
    info = read_info(args.stanza, args.run_as)
    write_atomically(args.output, render(args.stanza, info, time.time()))
    # The file is written either way; a failed `info` makes the unit fail too,
    # so `systemctl --failed` and the journal show it.
    return 0 if info is not None else 1


if __name__ == "__main__":
    sys.exit(main())
