"""Staff roles (权限管理): who may do what; ADMIN_IDS are owners from the first start."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from models import Role, StaffMember
from models.database import Database
from services.audit import record_audit
from services.clock import Clock, SystemClock

# A former staff member keeps their row, so tickets they answered still name them.
REMOVED = "removed"
# Every update asks who is writing; the staff list is read at most this often instead
# (seconds). A change made through this instance shows at once; one made through another
# instance sharing the database shows here within this time.
ROLES_MAX_AGE = 5.0


class StaffError(ValueError):
    """A change to the staff list that the rules refuse; `reason` names which rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Member:
    telegram_id: int
    role: Role
    name: str | None
    # An owner named in ADMIN_IDS: changed only in the configuration, never from the chat.
    configured: bool
    since: datetime | None


@dataclass(frozen=True)
class Change:
    telegram_id: int
    before: Role | None
    after: Role | None


class Staff:
    def __init__(self, db: Database, owner_ids: frozenset[int], clock: Clock | None = None) -> None:
        self.db = db
        self.owner_ids = owner_ids
        self.clock = clock or SystemClock()
        self._roles: dict[int, Role] = {}
        self._read_at: float | None = None
        self._reading = asyncio.Lock()
        # Bumped by every change made here, so a reading that began before it is not kept.
        self._changes = 0

    async def role_of(self, telegram_id: int) -> Role | None:
        if telegram_id in self.owner_ids:
            return Role.OWNER
        return (await self._current_roles()).get(telegram_id)

    async def _current_roles(self) -> dict[int, Role]:
        if not self._stale():
            return self._roles
        async with self._reading:
            # Updates that waited here while another read the list use that reading.
            if self._stale():
                read_at, changes = time.monotonic(), self._changes
                async with self.db.session() as session:
                    rows = await session.execute(
                        select(StaffMember.telegram_id, StaffMember.role).where(
                            StaffMember.role != REMOVED
                        )
                    )
                    self._roles = {telegram_id: Role(role) for telegram_id, role in rows}
                if changes == self._changes:
                    self._read_at = read_at
        return self._roles

    def _changed(self) -> None:
        self._changes += 1
        self._read_at = None

    def _stale(self) -> bool:
        return self._read_at is None or time.monotonic() - self._read_at > ROLES_MAX_AGE

    async def _stored_role(self, telegram_id: int) -> Role | None:
        """The role as the database holds it now: changes to the staff list are checked
        against this, never against a reading that may be seconds old."""
        if telegram_id in self.owner_ids:
            return Role.OWNER
        async with self.db.session() as session:
            role = await session.scalar(
                select(StaffMember.role).where(StaffMember.telegram_id == telegram_id)
            )
        return Role(role) if role and role != REMOVED else None

    async def members(self) -> list[Member]:
        """Everyone with a role, highest role first."""
        async with self.db.session() as session:
            rows = list(
                await session.scalars(select(StaffMember).where(StaffMember.role != REMOVED))
            )
        listed = [
            Member(row.telegram_id, Role(row.role), row.name, False, row.created_at)
            for row in rows
            if row.telegram_id not in self.owner_ids
        ]
        configured = [Member(i, Role.OWNER, None, True, None) for i in sorted(self.owner_ids)]
        return sorted(
            configured + listed, key=lambda m: (-m.role.rank, not m.configured, m.telegram_id)
        )

    async def set_role(
        self, actor: int, telegram_id: int, role: Role, name: str | None = None
    ) -> Change:
        """Give someone a role (or change theirs). Owners and admins may; only an owner
        may make or touch an owner; nobody changes their own role or a configured owner."""
        actor_role = await self._stored_role(actor)
        self._check(actor, actor_role, telegram_id)
        if role is Role.OWNER and actor_role is not Role.OWNER:
            raise StaffError("owner_only")
        async with self.db.transaction() as session:
            row = await session.scalar(
                select(StaffMember).where(StaffMember.telegram_id == telegram_id).with_for_update()
            )
            before = Role(row.role) if row is not None and row.role != REMOVED else None
            if before is Role.OWNER and actor_role is not Role.OWNER:
                raise StaffError("owner_only")
            if before is role:
                return Change(telegram_id, before, role)
            if row is None:
                adder = await session.scalar(
                    select(StaffMember.id).where(StaffMember.telegram_id == actor)
                )
                row = StaffMember(
                    telegram_id=telegram_id,
                    name=name[:128] if name else None,
                    role=role.value,
                    added_by=adder,
                    created_at=self.clock.now(),
                )
                session.add(row)
            else:
                row.role = role.value
                if name:
                    row.name = name[:128]
            record_audit(
                session,
                at=self.clock.now(),
                actor=actor,
                action="staff.role",
                target_type="staff",
                target_id=telegram_id,
                before={"role": before} if before else None,
                after={"role": role},
            )
        self._changed()
        return Change(telegram_id, before, role)

    async def remove(self, actor: int, telegram_id: int) -> Change:
        actor_role = await self._stored_role(actor)
        self._check(actor, actor_role, telegram_id)
        async with self.db.transaction() as session:
            row = await session.scalar(
                select(StaffMember).where(StaffMember.telegram_id == telegram_id).with_for_update()
            )
            if row is None or row.role == REMOVED:
                raise StaffError("not_staff")
            before = Role(row.role)
            if before is Role.OWNER and actor_role is not Role.OWNER:
                raise StaffError("owner_only")
            row.role = REMOVED
            record_audit(
                session,
                at=self.clock.now(),
                actor=actor,
                action="staff.remove",
                target_type="staff",
                target_id=telegram_id,
                before={"role": before, "name": row.name},
            )
        self._changed()
        return Change(telegram_id, before, None)

    def _check(self, actor: int, actor_role: Role | None, telegram_id: int) -> None:
        if actor_role is None or not actor_role.at_least(Role.ADMIN):
            raise StaffError("not_allowed")
        if telegram_id == actor:
            raise StaffError("self")
        if telegram_id in self.owner_ids:
            raise StaffError("configured_owner")
