"""SCRAM-SHA-256 secrets for PgBouncer's auth_file (RFC 5802 / 7677).

``"pw" | pgbouncer_scram_secret("user")`` returns
``SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>``, the format PostgreSQL
stores in pg_authid. The salt is derived from the user name (never from the
password, which would let a guess be checked without the 4096 iterations), so
the same input yields the same secret and the file only changes when the
password does: runs stay idempotent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

ITERATIONS = 4096


def pgbouncer_scram_secret(
    password: str, user: str, iterations: int = ITERATIONS
) -> str:
    pw = str(password).encode("utf-8")
    salt = hashlib.sha256(
        ("pgbouncer-scram-salt:" + str(user)).encode("utf-8")
    ).digest()[:16]
    salted = hashlib.pbkdf2_hmac("sha256", pw, salt, int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${int(iterations)}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


class FilterModule:
    def filters(self):
        return {"pgbouncer_scram_secret": pgbouncer_scram_secret}
