"""The internal role's prune_releases entry point (issue #16 item 2), run by
real ansible-playbook on this machine against temporary release directories:
it keeps the current release and the newest others, N in all, with and without
a marker file, and refuses to keep none."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook") or str(
    Path(sys.executable).with_name("ansible-playbook")
)


def _prune(
    tmp_path: Path, releases: Path, current: str, keep: int, marker: str = ""
) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "prune.yml"
    playbook.write_text(
        json.dumps(
            [
                {
                    "name": "Prune",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Prune",
                            "ansible.builtin.import_role": {
                                "name": "internal",
                                "tasks_from": "prune_releases",
                            },
                            "vars": {
                                "internal_releases_dir": str(releases),
                                "internal_releases_current": str(releases / current),
                                "internal_releases_keep": keep,
                                "internal_releases_marker": marker,
                            },
                        }
                    ],
                }
            ]
        )
    )
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "roles")}
    return subprocess.run(
        [
            ANSIBLE_PLAYBOOK,
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def _releases(tmp_path: Path, names: list[str], marker: str = "") -> Path:
    """Release directories, oldest first (modification times one minute apart)."""
    releases = tmp_path / "releases"
    for age, name in enumerate(reversed(names)):
        path = releases / name
        path.mkdir(parents=True)
        stamped = path
        if marker:
            stamped = path / marker
            stamped.write_text("sha\n")
        when = 1_700_000_000 - 60 * age
        os.utime(stamped, (when, when))
        os.utime(path, (when, when))
    return releases


def _left(releases: Path) -> list[str]:
    return sorted(p.name for p in releases.iterdir())


def test_keeps_the_newest_including_current(tmp_path: Path) -> None:
    releases = _releases(tmp_path, ["r1", "r2", "r3", "r4", "r5"])
    result = _prune(tmp_path, releases, "r5", 3)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _left(releases) == ["r3", "r4", "r5"]


def test_an_older_current_release_survives_a_rollback(tmp_path: Path) -> None:
    releases = _releases(tmp_path, ["r1", "r2", "r3", "r4", "r5"])
    result = _prune(tmp_path, releases, "r2", 3)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _left(releases) == ["r2", "r4", "r5"]


def test_with_a_marker_only_complete_releases_count(tmp_path: Path) -> None:
    releases = _releases(tmp_path, ["r1", "r2", "r3"], marker=".archive-sha256")
    (releases / "half-unpacked").mkdir()  # no marker: not a release, left alone
    result = _prune(tmp_path, releases, "r3", 2, marker=".archive-sha256")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _left(releases) == ["half-unpacked", "r2", "r3"]


def test_keep_one_leaves_only_current(tmp_path: Path) -> None:
    releases = _releases(tmp_path, ["r1", "r2", "r3"])
    result = _prune(tmp_path, releases, "r2", 1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _left(releases) == ["r2"]


def test_keep_zero_is_refused_and_removes_nothing(tmp_path: Path) -> None:
    releases = _releases(tmp_path, ["r1", "r2"])
    result = _prune(tmp_path, releases, "r2", 0)
    assert result.returncode != 0
    assert "keep at least 1" in result.stdout + result.stderr
    assert _left(releases) == ["r1", "r2"]
