"""The filters playbooks/rotate_secrets.yml plans with (playbooks/filter_plugins).

The SCRAM check must accept exactly the secrets made from a password (here the
pgbouncer role's; tests/app/test_app_rotation_scram.py checks PostgreSQL's own);
the env file parsing and the peppers an instance accepts must read the files
as the app does.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


filters = _load(ROOT / "playbooks/filter_plugins/rotate_secrets.py", "rotate_filters")
scram = _load(ROOT / "roles/pgbouncer/filter_plugins/scram.py", "pgbouncer_scram")


def test_scram_verify_matches_the_password_only() -> None:
    secret = scram.pgbouncer_scram_secret(
        "new-password-0123456789", "vector_search_app"
    )
    verify = filters.scram_sha256_verify
    assert verify(secret, "new-password-0123456789")
    assert not verify(secret, "old-password-0123456789")
    assert not verify("md5" + "0" * 32, "new-password-0123456789")
    assert not verify("", "x") and not verify(None, "x")
    assert not verify("SCRAM-SHA-256$4096:not base64!$x:y", "x")


def test_env_file_values_and_peppers() -> None:
    text = (
        "# managed\nDATABASE_USER=vector_search_app\nREDIS_PASSWORD='a=b'\n\n"
        "API_KEY_PEPPER=new\nAPI_KEY_PEPPER_PREVIOUS=old, none ,old\n"
    )
    env = filters.env_file_values(text)
    assert env["DATABASE_USER"] == "vector_search_app"
    assert env["REDIS_PASSWORD"] == "a=b"
    assert filters.api_key_peppers(env) == ["new", "old", ""]
    assert filters.api_key_peppers({}) == [""]
    assert filters.api_key_peppers({"API_KEY_PEPPER": "p"}) == ["p"]
