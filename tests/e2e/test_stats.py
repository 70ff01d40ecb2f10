"""/stats answers with KPIs and four PNG charts; /export sends a CSV Excel reads as UTF-8."""

from __future__ import annotations

import csv
import io
import struct
from datetime import timedelta
from decimal import Decimal

from bot.app import Carebot
from models import Role, SegmentSnapshot
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.state import Chat
from services.clock import FrozenClock
from services.customers import TelegramProfile
from services.loyalty import Sale
from services.tickets import StaffRef
from tests.e2e.conftest import OWNER_ID

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk, the first one after the signature."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def shop(carebot: Carebot, db: Database, clock: FrozenClock) -> None:
    """A little history: buyers in two periods, tickets answered at different speeds."""
    customers, loyalty, tickets = (carebot.dp[k] for k in ("customers", "loyalty", "tickets"))
    staff = StaffRef(OWNER_ID, "Olivia", Role.OWNER)
    for i in range(6):
        customer, _ = await customers.touch(TelegramProfile(3000 + i, 3000 + i, f"S{i}"))
        for n in range(i % 3 + 1):
            await loyalty.record_purchase(
                Sale(
                    f"S{i}-{n}",
                    Decimal(100 * (i + 1)),
                    clock.now() - timedelta(days=5 + 10 * n),
                    "api",
                    customer_id=customer.id,
                )
            )
        async with db.transaction() as session:
            session.add(
                SegmentSnapshot(
                    customer_id=customer.id,
                    recency_days=5,
                    frequency=i % 3 + 1,
                    monetary=Decimal(100),
                    r_score=5 - i % 5,
                    f_score=1 + i % 3,
                    m_score=2,
                    segment=("champions", "loyal", "lost")[i % 3],
                    abc_class="ABC"[i % 3],
                    tier="small",
                    computed_at=clock.now(),
                )
            )
        ticket = await tickets.open(customer.id, ("complaint", "question")[i % 2], "help")
        clock.advance(timedelta(minutes=10 * (i + 1)))
        await tickets.staff_said(ticket.id, staff, "on it")
        await tickets.close(ticket.id, staff)


async def test_stats_gives_kpis_and_four_charts(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, db: Database, clock: FrozenClock
) -> None:
    await shop(carebot, db, clock)
    olivia = telegram.staff_member(OWNER_ID, "Olivia", staff_chat, language_code="en")
    await olivia.says_in(staff_chat, "/stats 30d")
    report = await olivia.next_message(chat=staff_chat)
    for expected in (
        "Customers 6, new 6",
        "Active (bought) 6 · 12 purchases",
        "Repurchase rate 66.7%",
        "median 35 min",
        "50% within the 30-minute SLA",
        "Tickets 6: Complaint 3, Question 3",
    ):
        assert expected in report.text, expected
    captions = []
    for _ in range(4):
        chart = await olivia.next_message(chat=staff_chat)
        assert chart.photo is not None
        width, height = png_size(chart.photo)
        assert (width, height) == (1000, 600)
        assert len(chart.photo) > 10_000  # drawn, not blank
        captions.append(chart.caption or "")
    assert captions[0].startswith("RFM map")
    assert "of customers bring 80% of sales (6 buying customers)" in captions[1]
    assert captions[2].startswith("Satisfaction trend")
    assert "30-minute SLA" in captions[3]
    await olivia.says_in(staff_chat, "/stats last tuesday")
    assert "Usage: /stats" in (await olivia.next_message(chat=staff_chat)).text


async def test_export_sends_utf8_csv_and_viewers_get_totals_only(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, db: Database, clock: FrozenClock
) -> None:
    await shop(carebot, db, clock)
    customers = carebot.dp["customers"]
    await customers.touch(TelegramProfile(3100, 3100, "王小明"))
    olivia = telegram.staff_member(OWNER_ID, "Olivia", staff_chat, language_code="en")
    await olivia.says_in(staff_chat, "/export customers")
    sent = await olivia.next_message(chat=staff_chat)
    assert sent.document is not None and sent.document_name == "customers.csv"
    assert sent.document.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(sent.document.decode("utf-8-sig"))))
    assert len(rows) == 7 and "customers: 7 rows" in (sent.caption or "")
    assert {r["name"] for r in rows} >= {"王小明", "S0"}
    assert rows[0]["segment"] == "champions" and int(rows[0]["points"]) > 0

    await carebot.dp["staff"].set_role(OWNER_ID, 9501, Role.VIEWER)
    vera = telegram.staff_member(9501, "Vera", staff_chat, language_code="en")
    await vera.says_in(staff_chat, "/export purchases")
    totals = await vera.next_message(chat=staff_chat)
    assert totals.document_name == "purchases-summary.csv"
    assert "Viewers get totals only" in (totals.caption or "")
    lines = list(
        csv.reader(io.StringIO(totals.document.decode("utf-8-sig") if totals.document else ""))
    )
    assert lines[0] == ["month", "purchases", "refunds", "revenue", "buyers"]
    assert sum(int(line[1]) for line in lines[1:]) == 12
    assert "+86" not in (totals.document or b"").decode("utf-8-sig")
    await vera.says_in(staff_chat, "/export tickets")
    tickets = await vera.next_message(chat=staff_chat)
    assert tickets.document_name == "tickets-summary.csv"
    await olivia.says_in(staff_chat, "/export nonsense")
    assert "Usage: /export" in (await olivia.next_message(chat=staff_chat)).text
