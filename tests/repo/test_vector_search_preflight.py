"""The vector_search role's preflight refuses weak secrets, the API key pepper included.

Runs the role's real preflight tasks (``tasks_from: preflight``) with
``ansible-playbook`` against localhost: valid passwords and a given pepper
(and previous peppers). A placeholder, empty or short pepper, or a
placeholder among the previous ones, must stop the run with a message that
names the variable and the rule, and never the secret's value; a good pepper
passes the whole preflight.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
GOOD_PEPPER = "3f1c9a7e5b2d4c6e8a0b1d3f5e7c9a2b"  # 32 characters
PLAYBOOK = """\
- name: Run the vector_search preflight
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Preflight
      ansible.builtin.include_role:
        name: vector_search
        tasks_from: preflight
"""


def run_preflight(
    tmp_path: Path, **overrides: object
) -> subprocess.CompletedProcess[str]:
    values = {
        "vector_search_database_password": "runtime-password-0123456789",
        "vector_search_database_owner_password": "owner-password-0123456789",
        "vector_search_redis_password": "redis-password-0123456789",
        "vector_search_api_key_pepper": GOOD_PEPPER,
        **overrides,
    }
    (tmp_path / "vars.json").write_text(json.dumps(values))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "ansible.cfg").write_text(
        f"[defaults]\nroles_path = {ROOT / 'roles'}\nretry_files_enabled = False\n"
        f"filter_plugins = {ROOT / 'filter_plugins'}\n"
        "interpreter_python = auto_silent\n"
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    }
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "play.yml", "-e", "@vars.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_good_pepper_passes_the_whole_preflight(tmp_path: Path) -> None:
    result = run_preflight(
        tmp_path, vector_search_api_key_pepper_previous=["", "an-older-pepper"]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed=0" in result.stdout


@pytest.mark.parametrize(
    ("pepper", "reason"),
    [
        ("CHANGE_ME", "a placeholder"),
        ("please-change-me-before-production-0123", "a placeholder"),
        ("Secret", "a placeholder"),
        ("", "empty"),
        ("9f8e7d6c5b4a39281706", "shorter than 32 characters"),
    ],
    ids=["CHANGE_ME", "change-me-inside", "secret", "empty", "short"],
)
def test_a_weak_pepper_is_refused(tmp_path: Path, pepper: str, reason: str) -> None:
    result = run_preflight(tmp_path, vector_search_api_key_pepper=pepper)
    assert result.returncode != 0, f"{pepper!r} was accepted:\n{result.stdout}"
    assert f"vector_search_api_key_pepper is {reason}" in result.stdout, result.stdout
    assert "Refusing to deploy" in result.stdout, result.stdout
    if len(pepper) > 12:
        assert pepper not in result.stdout + result.stderr, "the pepper was printed"


def test_the_minimum_length_is_a_setting(tmp_path: Path) -> None:
    result = run_preflight(tmp_path, vector_search_api_key_pepper_min_length=40)
    assert result.returncode != 0
    assert "vector_search_api_key_pepper is shorter than 40 characters" in result.stdout


def test_a_placeholder_previous_pepper_is_refused(tmp_path: Path) -> None:
    result = run_preflight(
        tmp_path, vector_search_api_key_pepper_previous=["", "changeme", "none", "a,b"]
    )
    assert result.returncode != 0, result.stdout
    assert "vector_search_api_key_pepper_previous[1] is a placeholder" in result.stdout
    assert 'vector_search_api_key_pepper_previous[2] is "none"' in result.stdout
    assert "vector_search_api_key_pepper_previous[3] contains a comma" in result.stdout
    assert "vector_search_api_key_pepper_previous[0]" not in result.stdout


def test_previous_peppers_must_be_a_list(tmp_path: Path) -> None:
    result = run_preflight(
        tmp_path,
        vector_search_api_key_pepper_previous="0123456789abcdef0123456789abcdef",
    )
    assert result.returncode != 0, result.stdout
    assert "vector_search_api_key_pepper_previous is not a list" in result.stdout
