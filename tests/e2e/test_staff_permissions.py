"""Who may use which staff command: every command × every role × non-staff, one table."""

from __future__ import annotations

import logging

import pytest

from bot.app import Carebot
from bot.permissions import STAFF_COMMANDS
from models import Role
from sandbox.emulator import Emulator
from sandbox.players import StaffMember
from sandbox.state import Chat
from tests.e2e.conftest import OWNER_ID

FORBIDDEN = "needs the"  # the start of staff_forbidden in English
# Replies that come as several messages: the text and four charts.
MESSAGES = {"stats": 5}
ROLE_IDS = {Role.OWNER: OWNER_ID, Role.ADMIN: 9201, Role.AGENT: 9202, Role.VIEWER: 9203}


async def make_staff(carebot: Carebot, telegram: Emulator, group: Chat) -> dict[Role, StaffMember]:
    people = {}
    for role, user_id in ROLE_IDS.items():
        if role is not Role.OWNER:
            await carebot.dp["staff"].set_role(OWNER_ID, user_id, role)
        people[role] = telegram.staff_member(
            user_id, f"{role.value.title()}", group, language_code="en"
        )
    return people


async def test_every_staff_command_for_every_role(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat
) -> None:
    people = await make_staff(carebot, telegram, staff_chat)
    for command, spec in STAFF_COMMANDS.items():
        for role, member in people.items():
            await member.says_in(staff_chat, f"/{command}")
            allowed = role.at_least(spec.role)
            replies = [await member.next_message(chat=staff_chat)]
            for _ in range(MESSAGES.get(command, 1) - 1 if allowed else 0):
                replies.append(await member.next_message(chat=staff_chat))
            text = replies[0].text or replies[0].caption or ""
            if allowed:
                assert FORBIDDEN not in text, (command, role, text)
            else:
                assert text.startswith(f"⛔ /{command} {FORBIDDEN}"), (command, role, text)
                assert f"yours is {role.value.title()}" in text
            if command == "broadcast" and allowed:
                await member.says_in(staff_chat, "/cancel")
                assert "Cancelled" in (await member.next_message(chat=staff_chat)).text
        await people[Role.VIEWER].expect_none(chat=staff_chat)


async def test_non_staff_get_the_unknown_command_answer_and_are_logged(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="carebot.permissions")
    for number, (command, spec) in enumerate(STAFF_COMMANDS.items()):
        # One customer per command: the flood limit would slow a single one down.
        mallory = telegram.staff_member(9300 + number, "Mallory", staff_chat, language_code="en")
        await mallory.says("/start")
        unknown = (await mallory.says("/no_such_command")).text
        for text in (f"/{command}", f"/{command} 1 +5 test"):
            reply = await mallory.says(text)
            if not spec.customer_too:
                assert reply.text == unknown, (text, reply.text)
            assert FORBIDDEN not in reply.text and "Staff help" not in reply.text
        await mallory.says_in(staff_chat, f"/{command}")
        await mallory.expect_none(chat=staff_chat)
    refused = [r for r in caplog.records if r.name == "carebot.permissions"]
    exclusive = [c for c, spec in STAFF_COMMANDS.items() if not spec.customer_too]
    assert {r.getMessage().split()[2] for r in refused} == {f"/{c}" for c in exclusive}
    assert all(r.levelno == logging.WARNING for r in refused)
    assert not any("93" in r.getMessage() or "Mallory" in r.getMessage() for r in refused)


async def test_staff_commands_work_in_a_private_chat(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat
) -> None:
    people = await make_staff(carebot, telegram, staff_chat)
    agent = people[Role.AGENT]
    await agent.says("/start")
    assert "Usage: /find" in (await agent.says("/find")).text
    refused = await agent.says("/points 1 +5 goodwill")
    assert refused.text.startswith(f"⛔ /points {FORBIDDEN} Admin")
    # Without arguments /points is the customer's own: a staff member is a customer too.
    assert "My points" in (await agent.says("/points")).text
