"""The app's hash-locked dependencies: the tested set is the deployed set.

``app/requirements.lock`` (scripts/lock-app-deps.sh) is what the vector_search
role downloads and installs with ``--require-hashes`` on app hosts, and what
the Makefile installs into the test venv. These checks keep it complete (every
dependency of pyproject.toml, direct and transitive, pinned inside its range,
every pin hashed), keep the other requirements files from pinning those
packages again, and check that this venv runs exactly the locked versions.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "app" / "requirements.lock"
PYPROJECT = ROOT / "app" / "pyproject.toml"
TOOLCHAIN = [ROOT / "requirements.txt", ROOT / "requirements-dev.txt"]
STANDIN = ROOT / "files" / "ollama-standin" / "requirements.txt"
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def parse_lock(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) from a pip-compile --generate-hashes file."""
    entries: dict[str, tuple[str, list[str]]] = {}
    logical = re.sub(r"\\\n", " ", text)
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        spec, _, options = line.partition(" --")
        options = "--" + options if options else ""
        req = Requirement(spec.strip())
        pins = [s for s in req.specifier if s.operator == "=="]
        assert len(pins) == 1 and len(req.specifier) == 1, (
            f"not pinned with ==: {line!r}"
        )
        assert not req.url and not req.marker, f"URL or marker in the lock: {line!r}"
        name = canonicalize_name(req.name)
        assert name not in entries, f"{name} twice in the lock"
        entries[name] = (pins[0].version, HASH.findall(options))
    return entries


@pytest.fixture(scope="module")
def lock() -> dict[str, tuple[str, list[str]]]:
    return parse_lock(LOCK.read_text())


def _dependencies() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return [Requirement(d) for d in project["dependencies"]]


def test_parse_lock_rejects_unpinned_and_unhashed_lines() -> None:
    with pytest.raises(AssertionError):
        parse_lock("flask>=3.1 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    assert parse_lock("flask==3.1.3\n") == {"flask": ("3.1.3", [])}


def test_every_pin_is_hashed(lock: dict[str, tuple[str, list[str]]]) -> None:
    assert lock, "app/requirements.lock pins nothing"
    unhashed = sorted(name for name, (_, hashes) in lock.items() if not hashes)
    assert unhashed == [], f"pins without --hash=sha256: {unhashed}"


def test_every_project_dependency_is_pinned_inside_its_range(
    lock: dict[str, tuple[str, list[str]]],
) -> None:
    for req in _dependencies():
        name = canonicalize_name(req.name)
        assert name in lock, f"{req} (pyproject.toml) is not in app/requirements.lock"
        version = lock[name][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"{name}=={version} in the lock is outside pyproject's {req.specifier}"
        )


def test_the_lock_is_closed_over_every_dependency(
    lock: dict[str, tuple[str, list[str]]],
) -> None:
    """Every requirement of every locked package (with the extras pyproject asks for)
    is locked too, inside its range: read from the installed packages' metadata."""
    extras: dict[str, set[str]] = {}
    for req in _dependencies():
        extras.setdefault(canonicalize_name(req.name), set()).update(req.extras)
    todo = list(lock)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(name) or []:
            dep = Requirement(text)
            wanted = extras.get(name, set()) | {""}
            if dep.marker and not any(
                dep.marker.evaluate({**default_environment(), "extra": e})
                for e in wanted
            ):
                continue
            dep_name = canonicalize_name(dep.name)
            assert dep_name in lock, f"{name} needs {dep}, which the lock misses"
            assert dep.specifier.contains(lock[dep_name][0], prereleases=True), (
                f"{name} needs {dep}; the lock has {dep_name}=={lock[dep_name][0]}"
            )
            extras.setdefault(dep_name, set()).update(dep.extras)
            todo.append(dep_name)


def test_this_venv_runs_the_locked_versions(
    lock: dict[str, tuple[str, list[str]]],
) -> None:
    wrong = {
        name: (version, importlib.metadata.version(name))
        for name, (version, _) in lock.items()
        if importlib.metadata.version(name) != version
    }
    assert wrong == {}, f"locked vs installed (make venv installs the lock): {wrong}"


def test_other_requirement_files_refer_to_the_lock_and_repeat_no_pin(
    lock: dict[str, tuple[str, list[str]]],
) -> None:
    for path in TOOLCHAIN:
        text = path.read_text()
        assert "app/requirements.lock" in text, (
            f"{path.name} does not point to the lock"
        )
        assert "app/requirements.txt" not in text, (
            f"{path.name} still uses app/requirements.txt"
        )
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            name = canonicalize_name(Requirement(line).name)
            assert name not in lock, (
                f"{path.name} pins {line!r}, a dependency locked in app/requirements.lock"
            )
    assert not (ROOT / "app" / "requirements.txt").exists(), (
        "a second, unhashed pin list"
    )
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r app/requirements.lock" in makefile


def test_the_stand_in_agrees_with_the_lock(
    lock: dict[str, tuple[str, list[str]]],
) -> None:
    """The test venv also holds the Ollama stand-in: a shared package at another
    version would make the tested set differ from the lock."""
    for line in STANDIN.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name in lock:
            assert req.specifier.contains(lock[name][0], prereleases=True), (
                f"{STANDIN.name} pins {line!r}; app/requirements.lock has {lock[name][0]}"
            )
