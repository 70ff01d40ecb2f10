"""Demo data: a seeded, realistic shop — customers of every segment, purchases, tickets, surveys.

`carebot demo-data` and the sandbox page's "Load demo data" call `seed_demo`. The same
seed gives the same shop, relative to the clock's "now", so the charts always have recent
sales, birthdays fall in the current week, and some tickets are past their SLA.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Customer,
    PointsEntry,
    Purchase,
    Survey,
    SurveyAnswer,
    SurveyQuestion,
    SurveyResponse,
    Ticket,
    TicketKind,
    TicketMessage,
    TicketStatus,
)
from models.database import Database
from services.clock import Clock
from services.loyalty import TRAILING, Loyalty, points_for
from services.policy import Policy

T = TypeVar("T")

DEMO_SOURCE = "demo"
SURVEY_KEY = "post_purchase"  # the policy's post-purchase survey
DEMO_SURVEY_KEY = "demo_post_purchase"
_BATCH = 500
_CENT = Decimal("0.01")
_STORES = ("Nanjing Rd", "Xujiahui", "Jing'an", "Online")
_REGIONS = ("上海", "北京", "杭州", "苏州", "南京", "深圳", "广州", "成都")


@dataclass(frozen=True)
class Archetype:
    """A kind of customer history; together they cover every RFM segment and tier."""

    key: str
    weight: int
    purchases: tuple[int, int]  # how many sales
    last_days_ago: tuple[int, int]  # when the latest one was
    span_days: tuple[int, int]  # from the first sale to the latest
    amount: tuple[int, int]  # per sale, in currency units
    mood: int  # survey ratings centre on this (1-5)


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("champion", 5, (10, 24), (0, 14), (300, 720), (80, 300), 5),
    Archetype("loyal", 12, (6, 12), (0, 30), (300, 600), (30, 120), 4),
    Archetype("big_recent", 3, (1, 3), (0, 45), (10, 60), (400, 1500), 4),
    Archetype("new", 12, (1, 2), (0, 25), (0, 20), (30, 200), 4),
    Archetype("promising", 8, (2, 3), (10, 60), (20, 90), (50, 200), 4),
    Archetype("one_off", 16, (1, 1), (60, 400), (0, 0), (40, 300), 3),
    Archetype("at_risk", 10, (6, 15), (120, 300), (200, 500), (40, 150), 3),
    Archetype("cant_lose", 2, (8, 20), (150, 300), (300, 600), (150, 600), 2),
    Archetype("hibernating", 10, (2, 4), (200, 500), (60, 300), (20, 100), 3),
    Archetype("lost", 9, (1, 2), (400, 700), (0, 120), (20, 150), 2),
    Archetype("potential", 13, (0, 0), (0, 0), (0, 0), (0, 0), 4),
)

_ZH_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
# fmt: off
_ZH_GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰",
             "娟", "涛", "明", "超", "秀英", "霞", "平", "刚", "桂英", "晓东", "雪", "婷")
_EN_FIRST = ("Emily", "James", "Olivia", "Daniel", "Sophie", "Michael", "Grace", "Lucas",
             "Hannah", "David", "Chloe", "Ryan")
# fmt: on
_EN_LAST = ["Chen", "Wong", "Smith", "Lee", "Brown", "Liu", "Taylor", "Ng", "Walker", "Tan"]

# What customers wrote: seed content standing in for real tickets, not texts of the bot.
_TICKET_TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    TicketKind.COMPLAINT: {
        "zh": (
            "快递比承诺的晚了三天，包装也破了。",
            "收到的颜色和图片不一样。",
            "店员态度不太好。",
        ),
        "en": (
            "My parcel came three days late and the box was crushed.",
            "The colour is not the one in the photo.",
        ),
    },
    TicketKind.SUGGESTION: {
        "zh": ("希望周末能延长营业时间。", "可以增加微信支付以外的付款方式吗？"),
        "en": ("Please open a little later on weekends.", "A loyalty card in the app would help."),
    },
    TicketKind.QUESTION: {
        "zh": ("积分什么时候过期？", "可以开发票吗？"),
        "en": ("Do my points expire?", "Can I change the size after ordering?"),
    },
    TicketKind.PRAISE: {
        "zh": ("新店的服务非常好，谢谢！",),
        "en": ("Lovely service at the new store, thank you!",),
    },
}
_STAFF_REPLIES = {
    "zh": ("非常抱歉，我们马上为您处理。", "感谢您的建议，我们会认真考虑。"),
    "en": ("We are sorry — we are on it right away.", "Thank you, we have passed it on."),
}
_SURVEY_COMMENTS = {
    "zh": ("挺好的", "价格有点高", "店员很热情", "希望品种更多"),
    "en": ("All good", "A bit pricey", "Friendly staff", "More choice please"),
}


class DemoDataPresent(Exception):
    """Demo data was loaded into this database already."""


@dataclass(frozen=True)
class DemoCustomer:
    """A seeded customer who uses the bot: the sandbox creates a Telegram user for each."""

    telegram_id: int
    name: str
    locale: str
    phone: str


@dataclass(frozen=True)
class DemoSummary:
    customers: int
    purchases: int
    refunds: int
    points: int
    tickets: int
    open_tickets: int
    survey_responses: int
    birthdays_this_week: int
    on_telegram: tuple[DemoCustomer, ...]
    by_archetype: dict[str, int]


@dataclass
class _Sale:
    occurred_at: datetime
    amount: Decimal
    store: str
    refunded: bool = False
    row: Purchase | None = None
    refund: Purchase | None = None


@dataclass
class _Person:
    archetype: Archetype
    row: Customer
    sales: list[_Sale] = field(default_factory=list)


async def seed_demo(
    db: Database,
    policy: Policy,
    clock: Clock,
    *,
    customers: int = 300,
    seed: int = 1,
    timezone: ZoneInfo | None = None,
    telegram_base: int | None = None,
) -> DemoSummary:
    """Write a demo shop of `customers` customers in one transaction.

    With `telegram_base`, most customers get Telegram ids telegram_base + 1, + 2, ... so a
    sandbox can talk to them; without it they are like a shop's imported list, matched to
    Telegram users later by phone. Raises DemoDataPresent when loaded before.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    rng = random.Random(seed)
    zone = timezone or ZoneInfo("Asia/Shanghai")
    now = clock.now()
    async with db.transaction() as session:
        if await session.scalar(select(Customer.id).where(Customer.source == DEMO_SOURCE)):
            raise DemoDataPresent("demo data is already loaded in this database")
        taken_phones = set(await session.scalars(select(Customer.phone)))
        taken_telegram = set(await session.scalars(select(Customer.telegram_id)))
        people = _plan_people(rng, policy, now, zone, customers, taken_phones)
        birthdays = _birthdays_this_week(rng, people, now, zone)
        on_telegram = _assign_telegram(rng, people, telegram_base, taken_telegram)
        for chunk in _chunks([p.row for p in people]):
            session.add_all(chunk)
            await session.flush()
        sales, refunds = await _write_purchases(session, policy, people, now)
        points = await _write_ledger(session, Loyalty(db, policy, clock), people)
        tickets, open_tickets = await _write_tickets(session, rng, people, now)
        responses = await _write_surveys(session, rng, people, now)
    counts: dict[str, int] = {}
    for person in people:
        counts[person.archetype.key] = counts.get(person.archetype.key, 0) + 1
    return DemoSummary(
        customers=len(people),
        purchases=sales,
        refunds=refunds,
        points=points,
        tickets=tickets,
        open_tickets=open_tickets,
        survey_responses=responses,
        birthdays_this_week=birthdays,
        on_telegram=on_telegram,
        by_archetype=counts,
    )


# --- planning: pure, seeded -------------------------------------------------------------


def _plan_people(
    rng: random.Random,
    policy: Policy,
    now: datetime,
    zone: ZoneInfo,
    count: int,
    taken_phones: set[str | None],
) -> list[_Person]:
    weights = [a.weight for a in ARCHETYPES]
    people: list[_Person] = []
    for _ in range(count):
        archetype = rng.choices(ARCHETYPES, weights)[0]
        sales = _plan_sales(rng, archetype, now, zone)
        first = sales[0].occurred_at if sales else now - timedelta(days=rng.randint(1, 90))
        created = first - timedelta(days=rng.randint(0, 20), minutes=rng.randint(0, 600))
        locale = "en" if rng.random() < 0.25 else "zh"
        row = Customer(
            name=_name(rng, locale),
            phone=_phone(rng, taken_phones),
            birthday=_birthday(rng) if rng.random() < 0.7 else None,
            locale=locale,
            region=rng.choice(_REGIONS),
            source=DEMO_SOURCE,
            marketing_opt_in=rng.random() < 0.9,
            reachable=rng.random() > 0.02,
            created_at=min(created, now),
            last_seen_at=None,
        )
        people.append(_Person(archetype, row, sales))
    return people


def _plan_sales(
    rng: random.Random, archetype: Archetype, now: datetime, zone: ZoneInfo
) -> list[_Sale]:
    count = rng.randint(*archetype.purchases)
    if count == 0:
        return []
    last = rng.randint(*archetype.last_days_ago)
    span = rng.randint(*archetype.span_days) if count > 1 else 0
    days = sorted({last + rng.randint(0, span) for _ in range(count - 1)} | {last})
    sales = []
    for days_ago in reversed(days):
        occurred = _shop_hours(rng, now, zone, days_ago)
        if occurred > now:
            occurred = now - timedelta(minutes=rng.randint(5, 120))
        amount = (
            Decimal(rng.randint(*archetype.amount)) + Decimal(rng.choice((0, 50, 80, 90))) / 100
        )
        sales.append(_Sale(occurred, amount.quantize(_CENT), rng.choice(_STORES)))
    for sale in sales[:-1]:  # the latest sale stays, so every buyer keeps a recency
        sale.refunded = rng.random() < 0.03
    return sales


def _shop_hours(rng: random.Random, now: datetime, zone: ZoneInfo, days_ago: int) -> datetime:
    """A moment between 10:00 and 21:00 local time, `days_ago` days before today."""
    day = now.astimezone(zone).date() - timedelta(days=days_ago)
    local = datetime.combine(day, time(rng.randint(10, 20), rng.randint(0, 59)), tzinfo=zone)
    return local.astimezone(UTC)


def _name(rng: random.Random, locale: str) -> str:
    if locale == "zh":
        return rng.choice(_ZH_SURNAMES) + rng.choice(_ZH_GIVEN)
    return f"{rng.choice(_EN_FIRST)} {rng.choice(_EN_LAST)}"


def _phone(rng: random.Random, taken: set[str | None]) -> str:
    """A unique, valid Chinese mobile number in E.164, as the bot stores phones."""
    while True:
        phone = f"+86{rng.choice((139, 158, 186, 177))}{rng.randint(0, 99_999_999):08d}"
        if phone not in taken:
            taken.add(phone)
            return phone


def _birthday(rng: random.Random) -> date:
    return date(rng.randint(1962, 2005), 1, 1) + timedelta(days=rng.randint(0, 364))


def _birthdays_this_week(
    rng: random.Random, people: Sequence[_Person], now: datetime, zone: ZoneInfo
) -> int:
    """Move some birthdays into the coming seven days so the birthday job has work."""
    today = now.astimezone(zone).date()
    chosen = rng.sample(list(people), k=min(len(people), max(3, len(people) // 40)))
    for offset, person in enumerate(chosen):
        day = today + timedelta(days=offset % 7)
        year = rng.randint(1965, 2004)
        if (day.month, day.day) == (2, 29):
            year = 1996  # a leap year, so the date exists
        person.row.birthday = date(year, day.month, day.day)
    return len(chosen)


def _assign_telegram(
    rng: random.Random,
    people: Sequence[_Person],
    telegram_base: int | None,
    taken: set[int | None],
) -> tuple[DemoCustomer, ...]:
    if telegram_base is None:
        return ()
    linked = []
    number = telegram_base
    for person in people:
        if rng.random() >= 0.85:
            continue  # on the shop's list only, never opened the chat
        number += 1
        while number in taken:
            number += 1
        row = person.row
        row.telegram_id = row.chat_id = number
        row.last_seen_at = (
            person.sales[-1].occurred_at if person.sales else row.created_at
        ) + timedelta(hours=rng.randint(1, 48))
        assert row.name is not None and row.phone is not None
        linked.append(DemoCustomer(number, row.name, row.locale, row.phone))
    return tuple(linked)


def _chunks(items: Sequence[T]) -> list[Sequence[T]]:
    return [items[i : i + _BATCH] for i in range(0, len(items), _BATCH)]


# --- writing ------------------------------------------------------------------------------


async def _write_purchases(
    session: AsyncSession, policy: Policy, people: Sequence[_Person], now: datetime
) -> tuple[int, int]:
    """Sales first (refunds point at their ids), then the refunds; in batches."""
    sales: list[Purchase] = []
    number = 0  # a database holds one demo shop at most, so its references are free
    for person in people:
        for sale in person.sales:
            number += 1
            sale.row = Purchase(
                customer_id=person.row.id,
                phone=person.row.phone,
                reference=f"DEMO-{number:07d}",
                amount=sale.amount,
                currency=policy.currency,
                occurred_at=sale.occurred_at,
                store=sale.store,
                channel=DEMO_SOURCE,
                created_at=sale.occurred_at,
            )
            sales.append(sale.row)
    for chunk in _chunks(sales):
        session.add_all(chunk)
        await session.flush()
    refunds: list[Purchase] = []
    for person in people:
        for sale in [s for s in person.sales if s.refunded]:
            assert sale.row is not None
            when = min(sale.occurred_at + timedelta(days=3), now)
            refund = sale.refund = Purchase(
                customer_id=person.row.id,
                phone=person.row.phone,
                reference=f"{sale.row.reference}-R",
                amount=-sale.amount,
                currency=policy.currency,
                occurred_at=when,
                store=sale.store,
                channel=DEMO_SOURCE,
                refund_of_id=sale.row.id,
                created_at=when,
            )
            refunds.append(refund)
    for chunk in _chunks(refunds):
        session.add_all(chunk)
        await session.flush()
    return len(sales), len(refunds)


async def _write_ledger(session: AsyncSession, loyalty: Loyalty, people: Sequence[_Person]) -> int:
    """Points as `Loyalty.credit_purchases` credits them, sale by sale: at the tier held
    over the trailing year before each sale, expiring as the policy says; a refund takes
    back what its sale earned, never more than the balance. Computed here rather than
    through the service so that a few hundred histories cost a few inserts, not thousands
    of queries."""
    policy = loyalty.policy
    entries: list[PointsEntry] = []
    total = 0
    for person in people:
        history = [s.row for s in person.sales if s.row is not None]
        history += [s.refund for s in person.sales if s.refund is not None]
        history.sort(key=lambda p: (p.occurred_at, p.id))
        earned: dict[int, int] = {}
        balance = 0
        for purchase in history:
            if purchase.amount >= 0:
                start = purchase.occurred_at - TRAILING
                spend = sum(
                    (p.amount for p in history if start <= p.occurred_at < purchase.occurred_at),
                    Decimal(0),
                )
                delta = points_for(purchase.amount, policy, policy.tier_for_spend(spend))
                earned[purchase.id] = delta
                reason = "purchase"
            else:
                delta = -min(earned.get(purchase.refund_of_id or 0, 0), balance)
                reason = "refund"
            if delta:
                balance += delta
                entries.append(
                    PointsEntry(
                        customer_id=person.row.id,
                        delta=delta,
                        reason=reason,
                        reference=purchase.reference,
                        purchase_id=purchase.id,
                        expires_at=loyalty.expiry_for(purchase.occurred_at) if delta > 0 else None,
                        created_at=purchase.occurred_at,
                    )
                )
        total += balance
    for chunk in _chunks(entries):
        session.add_all(chunk)
        await session.flush()
    return total


async def _write_tickets(
    session: AsyncSession, rng: random.Random, people: Sequence[_Person], now: datetime
) -> tuple[int, int]:
    """Feedback of every kind: open ones (some past their SLA), taken, closed and rated."""
    candidates = [p for p in people if p.sales] or list(people)
    chosen = rng.sample(candidates, k=min(len(candidates), max(4, len(people) // 20)))
    kinds = list(_TICKET_TEXTS)
    opened = 0
    messages: list[TicketMessage] = []
    tickets: list[tuple[Ticket, _Person]] = []
    for index, person in enumerate(chosen):
        kind = TicketKind.COMPLAINT if index % 3 == 0 else rng.choice(kinds)
        state = (TicketStatus.OPEN, TicketStatus.TAKEN, TicketStatus.CLOSED)[index % 3]
        if state is TicketStatus.OPEN:
            # Some wait for minutes, some for hours: past the SLA, for the escalation job.
            created = now - timedelta(minutes=rng.choice((5, 20, 45, 90, 180, 600)))
            opened += 1
        else:
            created = now - timedelta(days=rng.randint(1, 60), minutes=rng.randint(0, 600))
        ticket = Ticket(
            customer_id=person.row.id,
            kind=str(kind),
            status=str(state),
            created_at=created,
            escalation_level=0,
        )
        if state is not TicketStatus.OPEN:
            answered = created + timedelta(minutes=rng.randint(3, 90))
            ticket.first_response_at = answered
            if state is TicketStatus.CLOSED:
                ticket.closed_at = answered + timedelta(hours=rng.randint(1, 48))
            ticket.csat = max(1, min(5, person.archetype.mood + rng.choice((-1, 0, 0, 1))))
        tickets.append((ticket, person))
    session.add_all([t for t, _ in tickets])
    await session.flush()
    for ticket, person in tickets:
        locale = person.row.locale
        messages.append(
            TicketMessage(
                ticket_id=ticket.id,
                author="customer",
                text=rng.choice(_TICKET_TEXTS[ticket.kind][locale]),
                created_at=ticket.created_at,
            )
        )
        if ticket.first_response_at is not None:
            messages.append(
                TicketMessage(
                    ticket_id=ticket.id,
                    author="staff",
                    text=rng.choice(_STAFF_REPLIES[locale]),
                    delivered=True,
                    created_at=ticket.first_response_at,
                )
            )
    session.add_all(messages)
    await session.flush()
    return len(tickets), opened


async def _survey(session: AsyncSession, now: datetime) -> list[SurveyQuestion]:
    """The questions of the shop's post-purchase survey: the one the policy defines (the
    bot creates it at start), else any survey sent after purchases, else a short one."""
    survey = await session.scalar(select(Survey).where(Survey.key == SURVEY_KEY))
    if survey is None:
        survey = await session.scalar(
            select(Survey).where(Survey.trigger == "purchase").order_by(Survey.id)
        )
    if survey is None:
        # Its own key, so it never stands in the way of the policy's survey created later.
        survey = Survey(
            key=DEMO_SURVEY_KEY,
            title={"zh": "购物满意度", "en": "How was your purchase?"},
            trigger="purchase",
            created_at=now - timedelta(days=400),
        )
        session.add(survey)
        await session.flush()
        texts = (
            {"zh": "您对这次购物总体满意吗？", "en": "How satisfied are you with your purchase?"},
            {"zh": "还有什么想告诉我们的吗？", "en": "Anything else you would like to tell us?"},
        )
        for position, (kind, text) in enumerate(zip(("rating", "text"), texts, strict=True), 1):
            session.add(
                SurveyQuestion(
                    survey_id=survey.id,
                    position=position,
                    kind=kind,
                    text=text,
                    optional=kind == "text",
                )
            )
        await session.flush()
    return list(
        await session.scalars(
            select(SurveyQuestion)
            .where(SurveyQuestion.survey_id == survey.id)
            .order_by(SurveyQuestion.position)
        )
    )


def _answer(
    rng: random.Random, question: SurveyQuestion, mood: int, locale: str
) -> tuple[int | None, str | None] | None:
    """A plausible answer (value, text) to one question, or None to leave it out."""
    shift = rng.choice((-1, 0, 0, 1))
    if question.kind == "rating":
        return max(1, min(5, mood + shift)), None
    if question.kind == "nps":
        return max(0, min(10, 2 * mood + shift)), None
    if question.kind == "choice" and question.choices:
        return None, str(rng.choice(question.choices).get("key", ""))
    if question.kind == "text" and rng.random() < 0.4:
        return None, rng.choice(_SURVEY_COMMENTS[locale])
    return None  # an optional comment left empty, or a kind this seed cannot answer


async def _write_surveys(
    session: AsyncSession, rng: random.Random, people: Sequence[_Person], now: datetime
) -> int:
    """A completed post-purchase survey for about a quarter of the buyers."""
    questions = await _survey(session, now)
    if not questions:
        return 0
    responses: list[tuple[SurveyResponse, _Person]] = []
    for person in people:
        last = next((s for s in reversed(person.sales) if s.row is not None), None)
        if last is None or last.row is None or rng.random() > 0.25:
            continue
        started = min(last.occurred_at + timedelta(days=3), now)
        responses.append(
            (
                SurveyResponse(
                    survey_id=questions[0].survey_id,
                    customer_id=person.row.id,
                    instance=f"purchase:{last.row.id}",
                    status="completed",
                    started_at=started,
                    completed_at=started + timedelta(minutes=rng.randint(1, 10)),
                ),
                person,
            )
        )
    session.add_all([r for r, _ in responses])
    await session.flush()
    answers: list[SurveyAnswer] = []
    for response, person in responses:
        for question in questions:
            answer = _answer(rng, question, person.archetype.mood, person.row.locale)
            if answer is not None:
                answers.append(
                    SurveyAnswer(
                        response_id=response.id,
                        question_id=question.id,
                        value=answer[0],
                        text=answer[1],
                        created_at=response.started_at,
                    )
                )
    for chunk in _chunks(answers):
        session.add_all(chunk)
        await session.flush()
    return len(responses)
