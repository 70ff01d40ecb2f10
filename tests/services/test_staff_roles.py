"""Staff roles are read once every few seconds, not once per update: a change made through
one instance shows there at once, and on another instance once its reading is old."""

from __future__ import annotations

import pytest

from models import Role
from models.database import Database
from services import staff as staff_module
from services.clock import FrozenClock
from services.staff import Staff

OWNER = 9001
AGENT = 9101


async def test_a_change_shows_at_once_where_it_was_made_and_later_elsewhere(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = Staff(db, frozenset({OWNER}), clock)
    there = Staff(db, frozenset({OWNER}), clock)
    assert await here.role_of(AGENT) is None
    assert await there.role_of(AGENT) is None

    await here.set_role(OWNER, AGENT, Role.AGENT)
    assert await here.role_of(AGENT) is Role.AGENT
    assert await there.role_of(AGENT) is None

    monkeypatch.setattr(staff_module, "ROLES_MAX_AGE", 0.0)
    assert await there.role_of(AGENT) is Role.AGENT
    await there.remove(OWNER, AGENT)
    assert await there.role_of(AGENT) is None
    assert await here.role_of(AGENT) is None


async def test_a_role_change_is_checked_against_the_stored_role(
    db: Database, clock: FrozenClock
) -> None:
    admin, target = 9102, 9103
    here = Staff(db, frozenset({OWNER}), clock)
    there = Staff(db, frozenset({OWNER}), clock)
    await here.set_role(OWNER, admin, Role.ADMIN)
    assert await there.role_of(admin) is Role.ADMIN
    await here.remove(OWNER, admin)
    # `there` still holds the reading where they were an admin; the change is refused.
    assert await there.role_of(admin) is Role.ADMIN
    with pytest.raises(staff_module.StaffError, match="not_allowed"):
        await there.set_role(admin, target, Role.AGENT)
