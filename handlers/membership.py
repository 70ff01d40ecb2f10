"""A customer blocking or unblocking the bot: unreachable at once, reachable again on return."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatMemberStatus, ChatType
from aiogram.types import ChatMemberUpdated

from services.customers import Customers

router = Router(name=__name__)
router.my_chat_member.filter(F.chat.type == ChatType.PRIVATE)

_GONE = {ChatMemberStatus.KICKED, ChatMemberStatus.LEFT}


@router.my_chat_member()
async def membership_changed(update: ChatMemberUpdated, customers: Customers) -> None:
    await customers.set_reachable(update.from_user.id, update.new_chat_member.status not in _GONE)
