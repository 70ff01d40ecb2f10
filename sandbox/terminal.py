"""A terminal chat with the bot through the emulator, as one customer."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from sandbox.players import Player
from sandbox.state import JsonDict
from sandbox.world import World

HELP = "Type a message. /contact shares your phone, /press N presses inline button N, Ctrl-D quits."


def render_event(event: JsonDict) -> str | None:
    """One printable block for an event in the customer's chat, or None to skip it."""
    kind = event["kind"]
    message = event.get("message") or {}
    if kind == "chat_action":
        return f"  ({event['action']}...)"
    if kind == "deleted":
        return f"  [bot deleted message #{message.get('message_id')}]"
    if kind == "callback_answer":
        return f"  [{'alert' if event.get('show_alert') else 'toast'}: {event.get('text') or ''}]"
    if kind not in ("bot_message", "edited"):
        return None
    prefix = "bot (edited)" if kind == "edited" else "bot"
    body = message.get("text") or f"<{message.get('kind')}>"
    lines = [f"{prefix} #{message.get('message_id')}: {body}"]
    number = 1
    for row in message.get("buttons") or []:
        cells = []
        for text, _target in row:
            cells.append(f"[{number}] {text}")
            number += 1
        lines.append("    " + "   ".join(cells))
    if message.get("reply_keyboard"):
        rows = ["  |  ".join(row) for row in message["reply_keyboard"]]
        lines.append("  keyboard: " + "  //  ".join(rows))
    return "\n".join(lines)


async def chat_in_terminal(emulator: World, user: Player) -> None:
    """Read lines from stdin as `user` and print what the bot does in their chat."""
    events = emulator.subscribe()

    async def show() -> None:
        while True:
            event = await events.get()
            if event.get("chat_id") == user.chat_id and (text := render_event(event)):
                print(text, flush=True)

    printer = asyncio.create_task(show())
    print(HELP, flush=True)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            text = line.strip()
            if not text:
                continue
            try:
                _act(emulator, user, text)
            except (AssertionError, LookupError, ValueError, RuntimeError) as exc:
                print(f"  ! {exc}", flush=True)
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
        emulator.unsubscribe(events)


def _act(emulator: World, user: Player, text: str) -> None:
    if text == "/contact":
        emulator.user_shares_contact(user.user_id, phone=user.user.phone)
    elif text.startswith("/press "):
        _press(emulator, user, int(text.split()[1]))
    else:
        emulator.user_sends_text(user.user_id, text)


def _press(emulator: World, user: Player, number: int) -> None:
    with_buttons = [m for m in user.messages if m.buttons and not m.deleted]
    if not with_buttons:
        raise LookupError("no inline buttons to press")
    message = with_buttons[-1]
    buttons = [b for row in message.buttons for b in row]
    if not 1 <= number <= len(buttons):
        raise LookupError(f"choose a button from 1 to {len(buttons)}")
    text, data = buttons[number - 1]
    if data is None or "://" in data:
        print(f"  (button {text!r} opens {data})", flush=True)
        return
    emulator.user_presses(user.user_id, user.chat_id, message.message_id, data)
