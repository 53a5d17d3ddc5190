"""Access roles of API callers (student, staff, academic, admin; anonymous):
clearance, rate limit and result cap. Not Ansible or PostgreSQL roles."""

from __future__ import annotations

from dataclasses import dataclass

from vector_search.config import Settings


@dataclass(frozen=True)
class Role:
    name: str
    clearance_level: int
    rate_limit_per_minute: int
    max_results: int
    can_admin: bool = False


KEY_ROLES: dict[str, Role] = {
    "student": Role("student", 2, 30, 20),
    "staff": Role("staff", 3, 60, 50),
    "academic": Role("academic", 4, 100, 100),
    "admin": Role("admin", 5, 200, 200, can_admin=True),
}


def anonymous_role(settings: Settings) -> Role:
    return Role(
        "anonymous", 1, settings.anonymous_rate_limit, settings.anonymous_max_results
    )


@dataclass(frozen=True)
class Principal:
    role: Role
    key_id: int | None
    owner: str | None

    @property
    def is_anonymous(self) -> bool:
        return self.key_id is None
