"""Staff at work in the staff group: the team, finding a customer, purchases, points, the
audit log and the ticket inbox."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from bot.app import Carebot
from jobs.tasks import run_job
from models import AuditEntry, PointsEntry, SegmentSnapshot
from models import Customer as CustomerRow
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.players import Customer, StaffMember
from sandbox.state import Chat
from services.clock import FrozenClock
from services.tickets import TicketView
from tests.e2e.care import file_complaint, posted, registered, settled
from tests.e2e.conftest import OWNER_ID


def owner(telegram: Emulator, group: Chat) -> StaffMember:
    return telegram.staff_member(OWNER_ID, "Olivia", group, language_code="en")


async def ask(member: StaffMember, group: Chat, text: str) -> str:
    await member.says_in(group, text)
    return (await member.next_message(chat=group)).text or ""


async def linked_customer(telegram: Emulator, user_id: int, name: str, phone: str) -> Customer:
    person = telegram.customer(
        user_id, name, language_code="en", phone=phone, username=name.lower()
    )
    await person.says("/start")
    await person.shares_contact()
    return person


async def said_to(telegram: Emulator, person: Customer, text: str) -> None:
    await telegram.wait_for(lambda m: m.chat_id == person.chat_id and text in m.body)


async def audit_actions(db: Database) -> list[tuple[int | None, str, str | None]]:
    async with db.session() as session:
        rows = await session.execute(
            select(AuditEntry.actor_telegram_id, AuditEntry.action, AuditEntry.target_id).order_by(
                AuditEntry.id
            )
        )
        return [tuple(row) for row in rows]


async def test_owners_and_admins_manage_the_team(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, db: Database
) -> None:
    olivia = owner(telegram, staff_chat)
    ann = telegram.staff_member(9401, "Ann", staff_chat, language_code="en")
    bob = telegram.staff_member(9402, "Bob", staff_chat, language_code="en")
    cy = telegram.staff_member(9403, "Cy", staff_chat, language_code="en")
    await olivia.says_in(staff_chat, "/staff add 9401 admin")
    assert "Added <code>9401</code>" in ((await olivia.next_message(chat=staff_chat)).html or "")
    # An admin adds an agent by replying to their message in the group...
    hello = await bob.says_in(staff_chat, "hello everyone")
    await ann.replies_in(staff_chat, hello.message_id, "/staff add agent")
    assert "Added 9402 (Bob) as agent" in (await ann.next_message(chat=staff_chat)).text
    # ...and a viewer through a forward of their message, whoever forwarded it.
    forwarded = telegram.post(
        staff_chat,
        ann.user,
        text="hi from Cy",
        forward_origin={"type": "user", "sender_user": cy.user.to_api(), "date": 1},
    )
    telegram.queue_update("message", forwarded.to_api(staff_chat))
    await ann.replies_in(staff_chat, forwarded.message_id, "/staff add viewer")
    assert "Added 9403 (Cy) as viewer" in (await ann.next_message(chat=staff_chat)).text
    # An admin cannot make owners, nor change a configured owner.
    assert "Only an owner" in await ask(ann, staff_chat, "/staff add 9403 owner")
    assert "ADMIN_IDS" in await ask(ann, staff_chat, f"/staff remove {OWNER_ID}")
    assert "own role" in await ask(ann, staff_chat, "/staff add 9401 owner")
    listing = await ask(olivia, staff_chat, "/staff")
    assert "Admin · 9401" in listing and "Agent · 9402 · Bob" in listing
    assert "Viewer · 9403 · Cy" in listing and f"Owner · {OWNER_ID}" in listing
    assert "agent → viewer" in await ask(ann, staff_chat, "/staff add 9402 viewer")
    assert "Removed 9402" in await ask(ann, staff_chat, "/staff remove 9402")
    assert await carebot.dp["staff"].role_of(9402) is None
    assert "not staff" in await ask(ann, staff_chat, "/staff remove 9402")
    assert await audit_actions(db) == [
        (OWNER_ID, "staff.role", "9401"),
        (9401, "staff.role", "9402"),
        (9401, "staff.role", "9403"),
        (9401, "staff.role", "9402"),
        (9401, "staff.remove", "9402"),
    ]
    log = await ask(olivia, staff_chat, "/audit 3")
    assert log.index("staff.remove") < log.index("staff.role")
    assert '"role": "viewer"' in log


async def test_find_shows_matches_and_the_customer_card(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, db: Database, clock: FrozenClock
) -> None:
    olivia = owner(telegram, staff_chat)
    alice = await linked_customer(telegram, 1801, "Alice", "+8613800138001")
    await linked_customer(telegram, 1802, "Alina", "+8613900139002")
    alice_id = (await carebot.dp["customers"].by_telegram(alice.user_id)).id
    async with db.transaction() as session:
        session.add(
            SegmentSnapshot(
                customer_id=alice_id,
                recency_days=3,
                frequency=4,
                monetary=500,
                r_score=5,
                f_score=4,
                m_score=4,
                segment="champions",
                abc_class="A",
                tier="regular",
                churn_probability=0.12,
                computed_at=clock.now(),
            )
        )
    await carebot.dp["desk"].purchase(OWNER_ID, alice_id, 320, "R-ALICE-1")
    tickets = carebot.dp["tickets"]
    await tickets.open(alice_id, "question", "Where is my order?")

    await olivia.says_in(staff_chat, "/find Ali")
    matches = await olivia.next_message(chat=staff_chat)
    assert "2 customers match" in matches.text
    assert [row[0][0] for row in matches.buttons] == [
        "#1 · Alice · +8613800138001",
        "#2 · Alina · +8613900139002",
    ]
    card = await olivia.presses("Alice", chat=staff_chat)
    for expected in (
        "Alice · #1 · @alice",
        "+8613800138001",
        "Points: 320",
        "Tier: Regular customer",
        "RFM: Champions (R5 F4 M4) · ABC: class A · Churn risk: 12%",
        "1 purchases",
        "R-ALICE-1",
        "Open tickets: #1 Question",
        "Offers: subscribed",
    ):
        assert expected in card.text, expected
    for query in ("13800138001", "+86 138 0013 8001", "1", "#1", "@alice", "8001"):
        text = await ask(olivia, staff_chat, f"/find {query}")
        assert "Alice · #1" in text, query
    assert "No customer matches" in await ask(olivia, staff_chat, "/find Zed")


async def test_the_customers_card_shows_a_sale_at_the_counter_and_a_points_change(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat
) -> None:
    olivia = owner(telegram, staff_chat)
    alice = telegram.customer(1821, "Alice", language_code="en", username="alice")
    await registered(carebot, alice)
    await file_complaint(alice, "The lid leaks")
    await posted(telegram)
    card = staff_chat.pinned[-1]
    assert "积分：0" in (await settled(telegram, card, "积分：")).body
    assert "POS-9 recorded" in await ask(olivia, staff_chat, "/purchase @alice 120 POS-9")
    assert "积分：120" in (await settled(telegram, card, "¥120.00")).body
    await ask(olivia, staff_chat, "/points @alice +30 goodwill")
    await settled(telegram, card, "积分：150")


async def test_the_customers_card_shows_points_a_scheduled_job_gave(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, clock: FrozenClock
) -> None:
    alice = telegram.customer(1822, "Alice", language_code="en")
    customer_id = await registered(carebot, alice)
    await file_complaint(alice, "The lid leaks")
    await posted(telegram)
    card = staff_chat.pinned[-1]
    assert "积分：0" in (await settled(telegram, card, "积分：")).body
    today = clock.now().astimezone(carebot.settings.zone).date()
    async with carebot.db.transaction() as session:
        await session.execute(
            update(CustomerRow)
            .where(CustomerRow.id == customer_id)
            .values(birthday=today.replace(year=1992))
        )
    assert (await run_job(carebot.jobs, "birthdays")).count == 1
    # The lowest tier's birthday gift: 50 points.
    await settled(telegram, card, "积分：50")


async def test_purchases_and_points_answer_with_the_new_balance(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, db: Database
) -> None:
    olivia = owner(telegram, staff_chat)
    await linked_customer(telegram, 1811, "Dora", "+8613800138011")
    done = await ask(olivia, staff_chat, "/purchase 13800138011 250.50 POS-77")
    assert "POS-77 recorded" in done and "Points +250, balance now 250" in done
    again = await ask(olivia, staff_chat, "/purchase 13800138011 250.50 POS-77")
    assert "already recorded" in again and "nothing changed" in again and "Balance: 250" in again
    made_up = await ask(olivia, staff_chat, "/purchase @dora 100")
    assert "Purchase staff-" in made_up and "balance now 350" in made_up
    assert "not an amount" in await ask(olivia, staff_chat, "/purchase @dora 1.234")
    assert "not an amount" in await ask(olivia, staff_chat, "/purchase @dora -5")
    assert "No customer “@nobody”" in await ask(olivia, staff_chat, "/purchase @nobody 5")

    added = await ask(olivia, staff_chat, "/points @dora +50 late birthday gift")
    assert "points +50 (late birthday gift)" in added and "Balance: 350 → 350" not in added
    assert "Balance: 350 → 400" in added
    assert "Balance: 400 → 100" in await ask(olivia, staff_chat, "/points 1 -300 correction")
    refused = await ask(olivia, staff_chat, "/points 1 -101 too much")
    assert "holds only 100 points" in refused
    assert "other than 0" in await ask(olivia, staff_chat, "/points 1 -0 nothing")
    assert "Usage: /points" in await ask(olivia, staff_chat, "/points 1 +5")
    async with db.session() as session:
        ledger = list(
            await session.execute(
                select(PointsEntry.delta, PointsEntry.reason, PointsEntry.actor_telegram_id)
                .where(PointsEntry.reason == "adjustment")
                .order_by(PointsEntry.id)
            )
        )
    assert [tuple(r) for r in ledger] == [
        (50, "adjustment", OWNER_ID),
        (-300, "adjustment", OWNER_ID),
    ]
    actions = [a for _, a, _ in await audit_actions(db)]
    assert actions == ["purchase.record", "purchase.record", "points.adjust", "points.adjust"]


async def test_inbox_lists_tickets_oldest_first_and_answers_from_buttons(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, clock: FrozenClock, db: Database
) -> None:
    olivia = owner(telegram, staff_chat)
    erin = await linked_customer(telegram, 1821, "Erin", "+8613800138021")
    finn = await linked_customer(telegram, 1822, "Finn", "+8613800138022")
    tickets = carebot.dp["tickets"]
    ids = [(await carebot.dp["customers"].by_telegram(p.user_id)).id for p in (erin, finn)]
    old: TicketView = await tickets.open(ids[0], "complaint", "Broken zipper")
    clock.advance(timedelta(minutes=45))
    new: TicketView = await tickets.open(ids[1], "question", "Opening hours?")
    clock.advance(timedelta(minutes=5))

    await olivia.says_in(staff_chat, "/inbox")
    inbox = await olivia.next_message(chat=staff_chat)
    assert inbox.text.index(f"#{old.id}") < inbox.text.index(f"#{new.id}")
    assert "waiting 50 min, 20 min past the SLA" in inbox.text
    assert "waiting 5 min, 25 min left" in inbox.text
    toast = await olivia.presses_for_toast(f"Take #{old.id}", chat=staff_chat)
    assert toast["text"] and f"#{old.id}" in toast["text"]
    assert (await tickets.get(old.id)).status == "taken"

    prompt = await olivia.presses(f"Reply #{old.id}", chat=staff_chat)
    assert "Write your answer" in prompt.text
    await olivia.says_in(staff_chat, "We are sending a new one today.")
    await said_to(telegram, erin, "We are sending a new one today.")
    await olivia.next_message(chat=staff_chat)  # the relay's delivery note

    await olivia.says_in(staff_chat, "/inbox")
    await olivia.next_message(chat=staff_chat)
    await olivia.presses(f"Reply #{new.id}", chat=staff_chat)
    canned = await olivia.presses("Looking into it", chat=staff_chat)
    assert "looking into it" in canned.text
    await said_to(telegram, finn, "looking into it")
    viewed = await tickets.get(new.id)
    assert viewed is not None and viewed.first_response_at is not None

    await olivia.says_in(staff_chat, "/inbox")
    await olivia.next_message(chat=staff_chat)
    await olivia.presses_for_toast(f"Close #{old.id}", chat=staff_chat)
    assert (await tickets.get(old.id)).status == "closed"
    await said_to(telegram, erin, "How satisfied")
    canned_list = await ask(olivia, staff_chat, "/canned")
    assert "Thanks for the feedback" in canned_list and "order number" in canned_list
    assert await audit_actions(db) == [
        (OWNER_ID, "ticket.take", str(old.id)),
        (OWNER_ID, "ticket.close", str(old.id)),
    ]


async def test_staff_who_read_chinese_get_chinese(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat
) -> None:
    wang = telegram.staff_member(OWNER_ID, "王", staff_chat, language_code="zh-hans")
    await linked_customer(telegram, 1831, "Gao", "+8613800138031")
    card = await ask(wang, staff_chat, "/find 138031")
    assert "积分" in card and "尚未分类" in card and "未关闭工单：无" in card
    await wang.says_in(staff_chat, "/stats 7d")
    report = await wang.next_message(chat=staff_chat)
    assert "经营报告" in report.text and "复购率" in report.text
    for _ in range(4):
        chart = await wang.next_message(chat=staff_chat)
        assert chart.photo is not None and chart.caption
    assert "需要「所有者」" not in await ask(wang, staff_chat, "/audit")
