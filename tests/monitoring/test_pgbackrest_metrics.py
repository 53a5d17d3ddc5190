"""The pgbackrest role's metrics script (roles/pgbackrest/files/pgbackrest_metrics.py):
the textfile it renders from `pgbackrest info --output=json` is valid exposition
format (`promtool check metrics`), carries the metric the alert rules use, and
is written atomically."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "pgbackrest" / "files" / "pgbackrest_metrics.py"
RULES = sorted((ROOT / "roles" / "prometheus" / "files" / "rules").glob("*.yml"))

spec = importlib.util.spec_from_file_location("pgbackrest_metrics", SCRIPT)
assert spec and spec.loader
metrics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(metrics)


def _backup(label: str, kind: str, start: int, stop: int) -> dict:
    return {
        "label": label,
        "type": kind,
        "error": False,
        "timestamp": {"start": start, "stop": stop},
        "info": {"size": 23447966, "repository": {"delta": 2786816, "size": 2786816}},
    }


# The shape pgBackRest 2.55 prints (trimmed).
INFO = [
    {
        "name": "main",
        "status": {"code": 0, "message": "ok", "lock": {"backup": {"held": False}}},
        "backup": [
            _backup("20261122-013005F", "full", 1795311005, 1795311100),
            _backup("20261129-013005F", "full", 1795914185, 1795914197),
            _backup(
                "20261129-013005F_20261130-013004D", "diff", 1796000404, 1796000410
            ),
        ],
    }
]


def test_newest_backup_of_each_type() -> None:
    text = metrics.render("main", INFO, 1796001000)
    assert (
        'pgbackrest_last_successful_backup_timestamp_seconds{stanza="main",type="full"} 1795914197'
        in text
    )
    assert (
        'pgbackrest_last_successful_backup_timestamp_seconds{stanza="main",type="diff"} 1796000410'
        in text
    )
    assert 'type="incr"} ' not in text.split("pgbackrest_backups")[0]
    assert 'pgbackrest_backups{stanza="main",type="full"} 2' in text
    assert 'pgbackrest_backups{stanza="main",type="incr"} 0' in text
    assert (
        'pgbackrest_last_backup_duration_seconds{stanza="main",type="full"} 12' in text
    )
    assert 'pgbackrest_info_success{stanza="main"} 1' in text


def test_no_backup_yet_and_failed_info() -> None:
    empty = [
        {
            "name": "main",
            "status": {"code": 2, "message": "no valid backups"},
            "backup": [],
        }
    ]
    text = metrics.render("main", empty, 1)
    assert 'pgbackrest_stanza_status_code{stanza="main"} 2' in text
    assert not re.search(
        r"^pgbackrest_last_successful_backup_timestamp_seconds\{", text, re.MULTILINE
    )
    failed = metrics.render("main", None, 1)
    assert 'pgbackrest_info_success{stanza="main"} 0' in failed
    assert "pgbackrest_last_successful" not in failed.replace("# ", "")


def test_rules_use_metrics_the_script_writes() -> None:
    text = metrics.render("main", INFO, 1796001000)
    written = set(re.findall(r"^(pgbackrest_[a-z_]+)", text, re.MULTILINE))
    used = {
        m
        for path in RULES
        for m in re.findall(r"\bpgbackrest_[a-z_]+", path.read_text())
    }
    assert used, "no alert rule uses the pgbackrest metrics"
    assert used <= written, (
        f"rules use metrics the script never writes: {used - written}"
    )


@pytest.mark.parametrize("info", [INFO, None], ids=["backups", "info-failed"])
def test_promtool_accepts_the_file(info: list | None) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: `make deps` installs it", pytrace=False)
    text = metrics.render("main", info, 1796001000)
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_written_atomically(tmp_path: Path) -> None:
    out = tmp_path / "pgbackrest.prom"
    out.write_text("old\n")
    metrics.write_atomically(str(out), "new\n")
    assert out.read_text() == "new\n"
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["pgbackrest.prom"]
