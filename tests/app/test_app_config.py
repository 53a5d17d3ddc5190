"""Settings: defaults, env file, *_FILE secrets, errors naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from vector_search.config import SETTINGS, ConfigError, example_env_file, load_settings


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    empty = tmp_path / "none.env"
    empty.write_text("")
    return {"VECTOR_SEARCH_ENV_FILE": str(empty), **values}


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(environ=_env(tmp_path))
    assert settings.port == 8000 and settings.threads == 4
    assert settings.pool_max == 4  # the pool is sized to the waitress threads
    assert settings.embedding_dimension == 384
    assert settings.cache_search_ttl == 900
    assert settings.runtime_role == "vector_search_app"
    assert "dbname=vector_search" in settings.conninfo()
    assert "user=vector_search_owner" in settings.conninfo(owner=True)


def test_env_file_and_precedence(tmp_path: Path) -> None:
    env_file = tmp_path / "vector-search.env"
    env_file.write_text(
        "# comment\nexport PORT=9001\nTHREADS='8'\nDATABASE_NAME=\"corpus\"\nREDIS_URL=redis://cache:6379/2\n"
    )
    settings = load_settings(environ={"THREADS": "6"}, env_file=str(env_file))
    assert (
        settings.port == 9001
        and settings.threads == 6
        and settings.database_name == "corpus"
    )
    via_variable = load_settings(environ={"VECTOR_SEARCH_ENV_FILE": str(env_file)})
    assert via_variable.port == 9001


def test_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "db-password"
    secret.write_text("s3cret\n")
    settings = load_settings(environ=_env(tmp_path, DATABASE_PASSWORD_FILE=str(secret)))
    assert settings.database_password == "s3cret"
    assert "password=s3cret" in settings.conninfo()
    assert settings.public_view()["DATABASE_PASSWORD"] == "***"
    with pytest.raises(ConfigError, match="DATABASE_PASSWORD_FILE"):
        load_settings(
            environ=_env(tmp_path, DATABASE_PASSWORD_FILE=str(tmp_path / "missing"))
        )
    with pytest.raises(
        ConfigError, match="either DATABASE_PASSWORD or DATABASE_PASSWORD_FILE"
    ):
        load_settings(
            environ=_env(
                tmp_path, DATABASE_PASSWORD="x", DATABASE_PASSWORD_FILE=str(secret)
            )
        )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("THREADS", "0"),
        ("EMBEDDING_DIMENSION", "-1"),
        ("CACHE_ENABLED", "maybe"),
        ("OLLAMA_URL", "ftp://x"),
        ("REDIS_URL", "http://x"),
        ("LOG_LEVEL", "loud"),
        ("DATABASE_SSLMODE", "sometimes"),
        ("DATABASE_RUNTIME_ROLE", "Robert'); DROP"),
        ("TEXT_SEARCH_CONFIG", "english; drop"),
        ("HOST", ""),
    ],
)
def test_invalid_values_name_the_setting(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(environ=_env(tmp_path, **{name: value}))


def test_cross_checks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CHUNK_OVERLAP"):
        load_settings(environ=_env(tmp_path, CHUNK_TOKENS="50", CHUNK_OVERLAP="50"))
    with pytest.raises(ConfigError, match="DATABASE_POOL_MIN"):
        load_settings(environ=_env(tmp_path, DATABASE_POOL_MIN="9", THREADS="4"))


def test_explicit_missing_env_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read env file"):
        load_settings(environ={}, env_file=str(tmp_path / "absent.env"))


def test_malformed_env_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("PORT 8000\n")
    with pytest.raises(ConfigError, match="bad.env:1"):
        load_settings(environ={}, env_file=str(bad))


def test_example_env_file_documents_every_setting(tmp_path: Path) -> None:
    text = example_env_file()
    for spec in SETTINGS:
        assert f"\n{spec.name}={spec.default}\n" in text
    example = tmp_path / "example.env"
    example.write_text(text)
    assert load_settings(environ={}, env_file=str(example)) == load_settings(
        environ=_env(tmp_path)
    )


def test_committed_example_is_current() -> None:
    example = Path(__file__).resolve().parents[2] / "app" / "vector-search.env.example"
    assert example.read_text() == example_env_file(), (
        "regenerate: vector-search config --example"
    )


def test_redis_password_keeps_the_acl_user(tmp_path: Path) -> None:
    from vector_search.cache import redis_url

    settings = load_settings(
        environ=_env(
            tmp_path,
            REDIS_URL="redis://vector_search@cache1:6379/0",
            REDIS_PASSWORD="p@ss word",
        )
    )
    assert redis_url(settings) == "redis://vector_search:p%40ss%20word@cache1:6379/0"
