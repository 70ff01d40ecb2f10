"""Who may use which staff command (权限管理): the one table, and the gate that applies it.

Staff commands work in the staff group and in a staff member's private chat with the bot.
The gate sits in front of every staff router and decides, from this table alone:
- a staff member whose role is high enough goes on to the handler;
- a staff member whose role is too low is told which role the command needs;
- anyone else is answered exactly as for an unknown command (in a private chat) or not at
  all (in the staff group), and the attempt is logged without who it was.
Buttons and conversation steps belong to the command that showed them and need its role.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject

from bot.say import Say
from models import Role

log = logging.getLogger("carebot.permissions")


@dataclass(frozen=True)
class StaffCommand:
    role: Role
    # Also a customer command (/help, /points): in a private chat it is the staff one only
    # with arguments, or during a staff conversation.
    customer_too: bool = False


STAFF_COMMANDS: dict[str, StaffCommand] = {
    "help": StaffCommand(Role.VIEWER, customer_too=True),
    "cancel": StaffCommand(Role.VIEWER, customer_too=True),
    "stats": StaffCommand(Role.VIEWER),
    "export": StaffCommand(Role.VIEWER),
    "coupon": StaffCommand(Role.VIEWER),
    "find": StaffCommand(Role.AGENT),
    "purchase": StaffCommand(Role.AGENT),
    "inbox": StaffCommand(Role.AGENT),
    "canned": StaffCommand(Role.AGENT),
    "points": StaffCommand(Role.ADMIN, customer_too=True),
    "broadcast": StaffCommand(Role.ADMIN),
    "campaigns": StaffCommand(Role.ADMIN),
    "import": StaffCommand(Role.ADMIN),
    "staff": StaffCommand(Role.ADMIN),
    "audit": StaffCommand(Role.OWNER),
}

# What a role may do inside a command: /export of single rows with personal data, where
# a viewer gets only the aggregates.
STAFF_ABILITIES: dict[str, Role] = {
    "export_rows": Role.AGENT,
}

# Button callback-data prefixes, and the command each belongs to.
STAFF_BUTTONS: dict[str, str] = {
    "sfind": "find",
    "sbc": "broadcast",
    "sinbox": "inbox",
}

# Conversation state groups, and the command each belongs to.
STAFF_STATES: dict[str, str] = {
    "BroadcastSteps": "broadcast",
    "InboxSteps": "inbox",
}


# What `_command` says of a customer command (/help, /points) in a private chat: the staff
# routers leave it to the customer handlers.
CUSTOMERS = "customers"


def may(role: Role | None, command_or_ability: str) -> bool:
    needed = STAFF_ABILITIES.get(command_or_ability)
    if needed is None:
        needed = STAFF_COMMANDS[command_or_ability].role
    return role is not None and role.at_least(needed)


def command_of(text: str | None) -> tuple[str, str] | None:
    """`/find@shop_bot 138` as ("find", "138"); None when the text is not a command."""
    if not text or not text.startswith("/"):
        return None
    head, _, args = text.partition(" ")
    name = head[1:].split("@", 1)[0].lower()
    return (name, args.strip()) if name else None


class StaffGate(BaseMiddleware):
    """Applies STAFF_COMMANDS in front of the staff routers; see the module's text."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        chat: Chat | None = data.get("event_chat")
        if chat is None:
            return await handler(event, data)
        private = chat.type == ChatType.PRIVATE
        command = self._command(event, data, private)
        role: Role | None = data.get("staff_role")
        if command is None:
            # Nothing behind the gate answers someone who is not staff in a private chat:
            # a customer's message skips the staff routers' filters altogether.
            if private and role is None:
                return UNHANDLED
            return await handler(event, data)
        if command == CUSTOMERS:
            return UNHANDLED
        in_staff_chat = chat.id == data.get("staff_chat_id")
        if not (private or in_staff_chat):
            return UNHANDLED
        spec = STAFF_COMMANDS[command]
        if role is None:
            if not spec.customer_too:
                log.warning("staff command /%s refused: not staff (%s chat)", command, chat.type)
            # In a private chat the customer handlers or the fallback answer it, exactly as
            # they answer anyone: nothing tells that the command exists.
            return UNHANDLED
        if not role.at_least(spec.role):
            log.warning("staff command /%s refused: role %s, needs %s", command, role, spec.role)
            await self._refuse(event, data["say"], command, role, spec.role)
            return None
        return await handler(event, data)

    def _command(self, event: TelegramObject, data: dict[str, Any], private: bool) -> str | None:
        """The staff command this event belongs to; None when it is none (other staff
        handlers may still want it), CUSTOMERS when it is the customer command."""
        if isinstance(event, CallbackQuery):
            prefix = (event.data or "").split(":", 1)[0]
            return STAFF_BUTTONS.get(prefix)
        if not isinstance(event, Message):
            return None
        state: str | None = data.get("raw_state")
        conversation = STAFF_STATES.get(state.split(":", 1)[0]) if state else None
        parsed = command_of(event.text or event.caption)
        if parsed is None:
            return conversation
        name, args = parsed
        spec = STAFF_COMMANDS.get(name)
        if spec is None:
            return None
        if private and spec.customer_too and not args and conversation is None:
            return CUSTOMERS
        return name

    async def _refuse(
        self, event: TelegramObject, say: Say, command: str, role: Role, needed: Role
    ) -> None:
        context: dict[str, Any] = {
            "command": command,
            "role": say.label(f"role_{role.value}"),
            "needed": say.label(f"role_{needed.value}"),
        }
        if isinstance(event, CallbackQuery):
            await say.notice(event, "staff_forbidden", **context)
        elif isinstance(event, Message):
            await say(event, "staff_forbidden", **context)
