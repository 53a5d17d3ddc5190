"""Repository checks for every role: documented defaults and naming.

Each role's ``meta/argument_specs.yml`` must document exactly the variables in
``defaults/main.yml`` (so a new default cannot go undocumented), every public
variable carries the role's prefix, and defaults never hold a usable secret.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
SECRET_WORDS = ("password", "passphrase", "secret", "pepper", "token")


def _load(path: Path) -> dict:
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def _spec_options(role: Path) -> dict:
    specs = _load(role / "meta" / "argument_specs.yml").get("argument_specs", {})
    options: dict = {}
    for entry in specs.values():
        options.update(entry.get("options") or {})
    return options


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_every_default_is_documented_and_nothing_else(role: Path) -> None:
    defaults = set(_load(role / "defaults" / "main.yml"))
    options = set(_spec_options(role))
    assert (role / "meta" / "argument_specs.yml").exists(), (
        f"{role.name}: meta/argument_specs.yml missing"
    )
    assert defaults - options == set(), f"{role.name}: defaults without a spec entry"
    # A required option (the internal role's entry points have some) is
    # passed by every caller and has no default by definition.
    required = {
        name for name, option in _spec_options(role).items() if option.get("required")
    }
    assert options - defaults - required == set(), (
        f"{role.name}: spec entries without a default"
    )
    assert required & defaults == set(), f"{role.name}: required options with a default"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_spec_entries_have_type_and_description(role: Path) -> None:
    for name, option in _spec_options(role).items():
        assert option.get("type"), f"{role.name}: {name} has no type"
        assert option.get("description"), f"{role.name}: {name} has no description"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_public_variables_carry_the_role_prefix(role: Path) -> None:
    prefix = role.name + "_"
    for name in _load(role / "defaults" / "main.yml"):
        assert name.startswith(prefix), (
            f"{role.name}: default {name!r} lacks the prefix {prefix!r}"
        )
    for name in _load(role / "vars" / "main.yml"):
        assert name.startswith(("_" + role.name + "_", prefix)), (
            f"{role.name}: var {name!r} lacks the prefix"
        )


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_defaults_hold_no_usable_secret(role: Path) -> None:
    for name, value in _load(role / "defaults" / "main.yml").items():
        if any(word in name for word in SECRET_WORDS) and isinstance(value, str):
            assert value in ("",) or "{{" in value or "CHANGE_ME" in value, (
                f"{role.name}: {name} has a literal default; secrets come from the vault"
            )


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_spec_defaults_equal_the_role_defaults(role: Path) -> None:
    """A default written in both files must say the same in both: the spec is
    what `ansible-doc` and readers see, defaults/main.yml is what runs."""
    defaults = _load(role / "defaults" / "main.yml")
    drifted = {
        name: (option["default"], defaults[name])
        for name, option in _spec_options(role).items()
        if "default" in option
        and name in defaults
        and option["default"] != defaults[name]
    }
    assert drifted == {}, f"{role.name}: spec default != defaults/main.yml: {drifted}"
