"""Filters for playbooks/rotate_secrets.yml.

``secret | scram_sha256_verify(password)``: whether a PostgreSQL SCRAM-SHA-256
secret (``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, as in
pg_authid) was made from ``password``. The playbook uses it to learn, without
a login attempt (which would log an authentication failure), whether the
database already has the vault's password. Passwords are taken as UTF-8
without SASLprep normalisation, which is exact for ASCII passwords such as
those ``openssl rand -hex`` makes.

``env_text | env_file_values``: the ``KEY=value`` lines of an environment file
as a dict (comments and blank lines skipped, one pair of quotes removed).

``env | api_key_peppers``: every pepper an app instance with these settings
accepts: API_KEY_PEPPER, then API_KEY_PEPPER_PREVIOUS (comma-separated,
``none`` meaning keys hashed without a pepper, as the app reads it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re


def scram_sha256_verify(secret: str | None, password: str) -> bool:
    match = re.fullmatch(
        r"SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)",
        str(secret or ""),
    )
    if not match:
        return False
    try:
        iterations = int(match.group(1))
        salt = base64.b64decode(match.group(2), validate=True)
        stored_key = base64.b64decode(match.group(3), validate=True)
    except (ValueError, binascii.Error):
        return False
    salted = hashlib.pbkdf2_hmac("sha256", str(password).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


def env_file_values(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in str(text).splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def api_key_peppers(env: dict[str, str]) -> list[str]:
    out = [str(env.get("API_KEY_PEPPER", "")).strip()]
    for word in str(env.get("API_KEY_PEPPER_PREVIOUS", "")).split(","):
        word = word.strip()
        if word:
            value = "" if word == "none" else word
            if value not in out:
                out.append(value)
    return out


class FilterModule:
    def filters(self):
        return {
            "scram_sha256_verify": scram_sha256_verify,
            "env_file_values": env_file_values,
            "api_key_peppers": api_key_peppers,
        }
