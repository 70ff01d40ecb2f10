"""Staff roles (权限管理): who may do what; ADMIN_IDS are owners from the first start."""

from __future__ import annotations

from sqlalchemy import select

from models import Role, StaffMember
from models.database import Database


class Staff:
    def __init__(self, db: Database, owner_ids: frozenset[int]) -> None:
        self.db = db
        self.owner_ids = owner_ids

    async def role_of(self, telegram_id: int) -> Role | None:
        if telegram_id in self.owner_ids:
            return Role.OWNER
        async with self.db.session() as session:
            role = await session.scalar(
                select(StaffMember.role).where(StaffMember.telegram_id == telegram_id)
            )
        return Role(role) if role else None
