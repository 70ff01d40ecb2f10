"""/staff (who has which role: list, add, remove) and /audit (what staff changed)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message, MessageOriginHiddenUser, MessageOriginUser, User

from bot.say import Say
from models import Role
from services.audit import Audit
from services.customers import Customers
from services.staff import Staff, StaffError

router = Router(name=__name__)

AUDIT_DEFAULT, AUDIT_MAX = 10, 20


class HiddenUser(Exception):
    """The forwarded message's author hides their account in forwards."""


@router.message(Command("staff"))
async def staff_command(
    message: Message,
    command: CommandObject,
    staff: Staff,
    customers: Customers,
    say: Say,
) -> None:
    words = (command.args or "").split()
    action = words[0].lower() if words else "list"
    if action == "list" and len(words) <= 1:
        await say(message, "staff_team_list", members=await staff.members(), label=say.label)
        return
    if action not in ("add", "remove") or message.from_user is None:
        await say(message, "staff_team_usage")
        return
    try:
        target = _target(message, words[1:])
    except HiddenUser:
        await say(message, "staff_team_hidden")
        return
    if target is None:
        await say(message, "staff_team_usage")
        return
    telegram_id, name, rest = target
    try:
        if action == "remove":
            if rest:
                await say(message, "staff_team_usage")
                return
            change = await staff.remove(message.from_user.id, telegram_id)
        else:
            role = _role(say, rest)
            if role is None:
                await say(message, "staff_team_usage")
                return
            if name is None:
                known = await customers.by_telegram(telegram_id)
                name = known.name if known is not None else None
            change = await staff.set_role(message.from_user.id, telegram_id, role, name)
    except StaffError as error:
        await say(message, "staff_team_refused", reason=error.reason)
        return
    await say(message, "staff_team_changed", change=change, name=name)


def _target(message: Message, words: list[str]) -> tuple[int, str | None, list[str]] | None:
    """Who is meant: a Telegram id first in the arguments, or the author of the message
    replied to (the original author when that message was forwarded)."""
    if words and words[0].lstrip("-").isdigit():
        return int(words[0]), None, words[1:]
    replied = message.reply_to_message
    if replied is None:
        return None
    origin = replied.forward_origin
    if isinstance(origin, MessageOriginHiddenUser):
        raise HiddenUser
    user: User | None = origin.sender_user if isinstance(origin, MessageOriginUser) else None
    if user is None and origin is None:
        user = replied.from_user
    if user is None or user.is_bot:
        return None
    return user.id, user.full_name, words


def _role(say: Say, words: list[str]) -> Role | None:
    if len(words) != 1:
        return None
    word = words[0].strip().lower()
    for role in Role:
        names = {n.lower() for n in say.renderer.labels_everywhere(f"role_{role.value}")}
        if word == role.value or word in names:
            return role
    return None


@router.message(Command("cancel"))
async def nothing_to_cancel(message: Message, say: Say) -> None:
    """The conversations answer /cancel themselves; here there was none going on."""
    await say(message, "nothing_to_cancel")


@router.message(Command("audit"))
async def audit_log(message: Message, command: CommandObject, audit: Audit, say: Say) -> None:
    raw = (command.args or "").strip()
    if raw and not raw.isdigit():
        await say(message, "staff_audit_usage", limit=AUDIT_MAX)
        return
    limit = min(int(raw), AUDIT_MAX) if raw else AUDIT_DEFAULT
    await say(message, "staff_audit", entries=await audit.latest(max(limit, 1)))
