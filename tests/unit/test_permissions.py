"""The permission table: every staff command has a role, and the help shows it to that role."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.permissions import STAFF_BUTTONS, STAFF_COMMANDS, STAFF_STATES, command_of, may
from bot.rendering import Renderer
from bot.staff_buttons import BroadcastStep, CustomerPick, InboxAction
from handlers.staff.broadcast import BroadcastSteps
from handlers.staff.queue import InboxSteps
from models import Role


def test_every_button_and_conversation_belongs_to_a_command() -> None:
    assert set(STAFF_BUTTONS.values()) <= set(STAFF_COMMANDS)
    assert set(STAFF_STATES.values()) <= set(STAFF_COMMANDS)
    for data in (CustomerPick(customer=1), BroadcastStep(step="x"), InboxAction(action="x")):
        assert data.pack().split(":")[0] in STAFF_BUTTONS
    for group in (BroadcastSteps, InboxSteps):
        assert group.__full_group_name__ in STAFF_STATES


def test_roles_are_ordered() -> None:
    assert may(Role.OWNER, "audit") and not may(Role.ADMIN, "audit")
    assert may(Role.AGENT, "export_rows") and not may(Role.VIEWER, "export_rows")
    assert not may(None, "help")


def test_command_names_are_read_as_telegram_writes_them() -> None:
    assert command_of("/find@shop_bot 138 0013") == ("find", "138 0013")
    assert command_of("/Stats") == ("stats", "")
    assert command_of("hello /find") is None and command_of(None) is None


def test_the_help_lists_a_command_only_to_roles_that_may_use_it() -> None:
    renderer = Renderer(timezone=ZoneInfo("Asia/Shanghai"))
    for role in Role:
        text = renderer.render("staff_help", "en", role=role.value)
        for command, spec in STAFF_COMMANDS.items():
            if command in ("help", "coupon"):
                continue
            shown = f"/{command}" in text
            assert shown == role.at_least(spec.role), (role, command)


def test_every_staff_command_is_described_in_the_menu() -> None:
    renderer = Renderer(timezone=ZoneInfo("Asia/Shanghai"))
    for command in STAFF_COMMANDS:
        assert renderer.label(f"cmd_staff_{command}", "zh") != renderer.label(
            f"cmd_staff_{command}", "en"
        )
