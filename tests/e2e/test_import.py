"""A CSV sent to the bot by an admin: bad rows reject the whole file with a line-numbered
report; a clean file is applied, and sending it again adds nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.app import Carebot
from models import Customer, Purchase, Role
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.state import Chat
from tests.e2e.conftest import OWNER_ID

BAD = b"""reference,phone,amount,occurred_at
S-1,13800138501,120.00,2026-04-01T10:00:00+08:00
S-2,13800138501,12O.00,2026-04-02T10:00:00+08:00
S-3,555,10,2026-04-03
S-4,13800138501,10,yesterday
"""
GOOD = """\ufeffreference,phone,amount,occurred_at,store
S-1,13800138501,120.00,2026-04-01T10:00:00+08:00,北京店
S-2,+86 139 0013 8502,80.50,2026-04-02 10:00,
"""


async def count(db: Database, model: type[Purchase] | type[Customer]) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count(model.id))) or 0)


async def test_a_bad_file_is_rejected_whole_and_a_good_one_applied_once(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, db: Database
) -> None:
    olivia = telegram.staff_member(OWNER_ID, "Olivia", staff_chat, language_code="en")
    await olivia.says("/start")
    buyer = telegram.customer(1901, "Buyer", language_code="en", phone="+8613800138501")
    await buyer.says("/start")
    await buyer.shares_contact()
    rejected = await olivia.sends_document(BAD, "sales.csv", caption="/import purchases")
    assert rejected.text.startswith("❌ Not imported (nothing was written): 3 problems found.")
    assert "line 3, amount: is not a number like 199.00" in rejected.text
    assert "line 4, phone: is not a valid phone number" in rejected.text
    assert "line 5, occurred_at: is not a date and time" in rejected.text
    assert await count(db, Purchase) == 0

    done = await olivia.sends_document(
        GOOD.encode("gb18030"), "sales.csv", caption="/import purchases"
    )
    assert (
        "Imported 2 rows" in done.text
        and "2 new, 0 already recorded (left as they were), 120 points" in done.text
    )
    again = await olivia.sends_document(GOOD.encode(), "sales.csv", caption="/import purchases")
    assert "0 new, 2 already recorded (left as they were), 0 points" in again.text
    assert await count(db, Purchase) == 2
    async with db.session() as session:
        store = await session.scalar(select(Purchase.store).where(Purchase.reference == "S-1"))
    assert store == "北京店"


async def test_customer_lists_import_in_the_staff_group_by_admins_only(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, db: Database
) -> None:
    await carebot.dp["staff"].set_role(OWNER_ID, 9601, Role.AGENT)
    agent = telegram.staff_member(9601, "Ag", staff_chat, language_code="en")
    olivia = telegram.staff_member(OWNER_ID, "Olivia", staff_chat, language_code="en")
    data = "phone,name,birthday,marketing_opt_in\n13800138601,王芳,1992-02-29,yes\n".encode()
    agent._seen[staff_chat.id] = telegram.seq
    telegram.user_sends_file(
        agent.user_id,
        "document",
        data,
        file_name="list.csv",
        caption="/import customers",
        chat_id=staff_chat.id,
    )
    assert "needs the Admin role" in (await agent.next_message(chat=staff_chat)).text
    olivia._seen[staff_chat.id] = telegram.seq
    telegram.user_sends_file(
        olivia.user_id,
        "document",
        data,
        file_name="list.csv",
        caption="/import customers",
        chat_id=staff_chat.id,
    )
    assert "1 new customers" in (await olivia.next_message(chat=staff_chat)).text
    assert await count(db, Customer) == 1
    await olivia.says_in(staff_chat, "/import")
    assert "caption" in (await olivia.next_message(chat=staff_chat)).text
