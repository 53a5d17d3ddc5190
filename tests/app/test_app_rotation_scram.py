"""playbooks/rotate_secrets.yml learns whether PostgreSQL already has the vault's
password by checking the role's SCRAM secret from pg_authid on the controller
(no login attempt). Checked here against secrets a real PostgreSQL made."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

from vs_services import Postgres

FILTERS = (
    Path(__file__).resolve().parents[2] / "playbooks/filter_plugins/rotate_secrets.py"
)


def _verify():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("rotate_filters", FILTERS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.scram_sha256_verify


def test_scram_verify_against_pg_authid(postgres: Postgres) -> None:
    verify = _verify()
    role = f"vs_rot_{uuid.uuid4().hex[:8]}"
    with postgres.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'old-password-0123456789'")
        try:
            old = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
            ).fetchone()[0]  # type: ignore[index]
            conn.execute(f"ALTER ROLE {role} PASSWORD 'new-password-0123456789'")
            new = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
            ).fetchone()[0]  # type: ignore[index]
        finally:
            conn.execute(f"DROP ROLE {role}")
    assert str(old).startswith("SCRAM-SHA-256$")
    assert verify(old, "old-password-0123456789")
    assert not verify(old, "new-password-0123456789")
    assert verify(new, "new-password-0123456789")
    assert not verify(new, "old-password-0123456789")
