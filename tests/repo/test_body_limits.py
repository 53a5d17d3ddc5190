"""One request body limit: nginx's client_max_body_size, the app's MAX_BODY_BYTES
(waitress and Flask) and every inventory that sets either must agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NGINX = "nginx_client_max_body_size"
APP = "vector_search_max_body_bytes"
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def nginx_bytes(value: Any) -> int:
    """nginx size syntax (bytes, or a k/m/g suffix) in bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgKMG]?)\s*", str(value))
    if not match:
        raise ValueError(f"not an nginx size: {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) if path.exists() else None
    return data if isinstance(data, dict) else {}


def _role_default(role: str, name: str) -> Any:
    return _yaml(ROOT / "roles" / role / "defaults" / "main.yml")[name]


def _spec_default(role: str, name: str) -> Any:
    specs = _yaml(ROOT / "roles" / role / "meta" / "argument_specs.yml")
    return specs["argument_specs"]["main"]["options"][name]["default"]


def _app_default() -> int:
    example = (ROOT / "app" / "vector-search.env.example").read_text()
    match = re.search(r"^MAX_BODY_BYTES=(\d+)$", example, re.MULTILINE)
    assert match, "MAX_BODY_BYTES missing from app/vector-search.env.example"
    return int(match.group(1))


def test_defaults_agree() -> None:
    nginx = nginx_bytes(_role_default("nginx", NGINX))
    app = int(_role_default("vector_search", APP))
    assert nginx == app, f"{NGINX} ({nginx} bytes) != {APP} ({app})"
    assert nginx_bytes(_spec_default("nginx", NGINX)) == nginx
    assert int(_spec_default("vector_search", APP)) == app
    assert _app_default() == app, (
        "the app's MAX_BODY_BYTES default differs from the role's"
    )


def _variable_files() -> dict[str, list[Path]]:
    """Every inventory (and Molecule scenario) -> its variable files."""
    out: dict[str, list[Path]] = {}
    for inventory in sorted((ROOT / "inventories").iterdir()):
        if inventory.is_dir():
            out[f"inventories/{inventory.name}"] = sorted(
                p for p in inventory.rglob("*.yml") if p.name != "vault.yml.example"
            )
    for scenario in sorted((ROOT / "molecule").iterdir()):
        if (scenario / "molecule.yml").exists():
            out[f"molecule/{scenario.name}"] = [scenario / "molecule.yml"] + sorted(
                p
                for p in (scenario / "inventory").rglob("*.yml")
                if (scenario / "inventory").is_dir() and not p.is_symlink()
            )
    return out


def _settings(data: Any) -> dict[str, Any]:
    """Every value of the two variables (and of MAX_BODY_BYTES in
    vector_search_settings) anywhere in a YAML document (group_vars, host vars,
    a Molecule inventory)."""
    found: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if key in (NGINX, APP):
                found.setdefault(key, []).append(value)
            elif key == "vector_search_settings" and isinstance(value, dict):
                if "MAX_BODY_BYTES" in value:
                    found.setdefault(APP, []).append(value["MAX_BODY_BYTES"])
            else:
                for k, v in _settings(value).items():
                    found.setdefault(k, []).extend(v)
    elif isinstance(data, list):
        for item in data:
            for k, v in _settings(item).items():
                found.setdefault(k, []).extend(v)
    return found


FILES = _variable_files()


@pytest.mark.parametrize("inventory", sorted(FILES))
def test_every_inventory_agrees(inventory: str) -> None:
    found: dict[str, list[Any]] = {}
    for path in FILES[inventory]:
        for key, values in _settings(_yaml(path)).items():
            found.setdefault(key, []).extend(values)
    if not found:
        return  # the role defaults, which agree
    nginx_values = found.get(NGINX) or [_role_default("nginx", NGINX)]
    app_values = found.get(APP) or [_role_default("vector_search", APP)]
    for value in nginx_values + app_values:
        if isinstance(value, str) and "{{" in value:
            # a template must derive one from the other, e.g. "{{ vector_search_max_body_bytes }}"
            assert NGINX in value or APP in value, f"{inventory}: {value!r}"
    sizes = {
        nginx_bytes(v) for v in nginx_values if not (isinstance(v, str) and "{{" in v)
    } | {int(v) for v in app_values if not (isinstance(v, str) and "{{" in v)}
    assert len(sizes) <= 1, (
        f"{inventory}: {NGINX} {nginx_values} and {APP} {app_values} disagree"
    )


def test_nginx_sizes_parse() -> None:
    assert nginx_bytes("64k") == 65536 and nginx_bytes("10m") == 10 * 1024**2
    assert nginx_bytes(65536) == 65536
    with pytest.raises(ValueError):
        nginx_bytes("10 MB")
