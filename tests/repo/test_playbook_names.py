"""One vocabulary (issue #16 item 5): a tier playbook that site.yml imports is
named after the inventory group it deploys, and its tag is that name too, so
`site.yml --tags redis` and `playbooks/redis.yml` mean the group `redis`."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# playbooks that deploy to every host: named after what they do
CROSS_TIER = {"common", "monitoring"}


def _tier_playbooks() -> list[Path]:
    site = yaml.safe_load((REPO / "site.yml").read_text())
    paths = [REPO / play["ansible.builtin.import_playbook"] for play in site]
    return [p for p in paths if p.stem not in CROSS_TIER]


def test_site_imports_tier_playbooks() -> None:
    names = {p.stem for p in _tier_playbooks()}
    assert {
        "postgresql",
        "pgbouncer",
        "redis",
        "ollama",
        "app",
        "loadbalancer",
    } <= names


def test_each_tier_playbook_is_named_and_tagged_after_its_group() -> None:
    for path in _tier_playbooks():
        plays = yaml.safe_load(path.read_text())
        first = plays[0]
        assert first["hosts"] == path.stem, (
            f"{path.relative_to(REPO)} deploys group {first['hosts']!r}: name it "
            f"playbooks/{first['hosts']}.yml"
        )
        assert path.stem in first.get("tags", []), (
            f"{path.relative_to(REPO)}: tag the play {path.stem!r} (site.yml --tags {path.stem})"
        )


def test_docs_name_only_existing_tags() -> None:
    tags = {p.stem for p in _tier_playbooks()} | CROSS_TIER | {"pgbackrest", "backup"}
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for line in doc.read_text().splitlines():
            if "--tags " not in line:
                continue
            tag = line.split("--tags ", 1)[1].split()[0].rstrip("`),.;")
            for name in tag.split(","):
                assert name in tags, (
                    f"{doc.name}: '--tags {name}' is no play's tag: {line.strip()}"
                )
