"""/inbox: open tickets oldest first with their SLA clock; take, answer or close them from
buttons, with canned answers (/canned) in the customer's language."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot import staff_buttons
from bot.rendering import Renderer
from bot.say import Say
from bot.staff_buttons import InboxAction
from bot.staff_inbox import RELAYED, StaffInbox
from handlers.staff.inbox import staff_ref, take_or_close
from models import Role
from services.clock import Clock
from services.customers import Customers
from services.lookup import Lookup
from services.policy import Policy
from services.tickets import Tickets

router = Router(name=__name__)

CANNED_PREFIX = "canned_"


class InboxSteps(StatesGroup):
    reply = State()


@router.message(Command("inbox"))
async def inbox(message: Message, lookup: Lookup, policy: Policy, clock: Clock, say: Say) -> None:
    lines, total = await lookup.inbox()
    await say(
        message,
        "staff_inbox",
        tickets=lines,
        total=total,
        now=clock.now(),
        sla=policy.service.sla_minutes,
        reply_markup=staff_buttons.inbox(say, lines) if lines else None,
    )


@router.message(Command("canned"))
async def canned(message: Message, renderer: Renderer, say: Say) -> None:
    names = renderer.template_names(CANNED_PREFIX)
    await say(
        message,
        "staff_canned",
        answers=[(staff_buttons.name_of(say, n), say.text(n, customer=None)) for n in names],
    )


@router.callback_query(InboxAction.filter(F.action.in_({"take", "close"})))
async def inbox_take_or_close(
    query: CallbackQuery,
    callback_data: InboxAction,
    staff_role: Role,
    tickets: Tickets,
    staff_inbox: StaffInbox,
    say: Say,
) -> None:
    await take_or_close(
        query,
        callback_data.action,
        callback_data.ticket,
        staff_ref(query.from_user, staff_role),
        tickets,
        staff_inbox,
        say,
    )


@router.callback_query(InboxAction.filter(F.action == "reply"))
async def reply(
    query: CallbackQuery,
    callback_data: InboxAction,
    state: FSMContext,
    tickets: Tickets,
    renderer: Renderer,
    say: Say,
) -> None:
    ticket = await tickets.get(callback_data.ticket)
    if ticket is None or not ticket.is_open:
        await say.notice(query, "stale_button")
        return
    await state.set_state(InboxSteps.reply)
    await state.update_data(ticket=ticket.id)
    await say(
        query,
        "staff_inbox_write",
        ticket=ticket,
        reply_markup=staff_buttons.canned(say, ticket.id, renderer.template_names(CANNED_PREFIX)),
    )


@router.message(InboxSteps.reply, Command("cancel"))
async def cancel_command(message: Message, state: FSMContext, say: Say) -> None:
    await state.clear()
    await say(message, "staff_inbox_cancelled")


@router.callback_query(InboxAction.filter(F.action == "cancel"))
async def cancel_button(query: CallbackQuery, state: FSMContext, say: Say) -> None:
    await state.clear()
    await say(query, "staff_inbox_cancelled")


@router.message(InboxSteps.reply, F.content_type.in_(RELAYED), ~F.text.startswith("/"))
async def answer_written(
    message: Message,
    state: FSMContext,
    staff_role: Role,
    tickets: Tickets,
    staff_inbox: StaffInbox,
    say: Say,
) -> None:
    ticket = await tickets.get(int((await state.get_data()).get("ticket", 0)))
    await state.clear()
    if ticket is None or message.from_user is None:
        await say(message, "staff_inbox_cancelled")
        return
    await staff_inbox.to_customer(message, ticket, staff_ref(message.from_user, staff_role))


@router.callback_query(StateFilter(InboxSteps.reply), InboxAction.filter(F.action == "canned"))
async def canned_chosen(
    query: CallbackQuery,
    callback_data: InboxAction,
    state: FSMContext,
    staff_role: Role,
    tickets: Tickets,
    customers: Customers,
    staff_inbox: StaffInbox,
    renderer: Renderer,
    say: Say,
) -> None:
    name = CANNED_PREFIX + callback_data.name
    ticket = await tickets.get(callback_data.ticket)
    message = query.message
    if (
        ticket is None
        or name not in renderer.template_names(CANNED_PREFIX)
        or message is None
        or isinstance(message, InaccessibleMessage)
    ):
        await say.notice(query, "stale_button")
        return
    await state.clear()
    customer = await customers.get(ticket.customer_id)
    locale = customer.locale if customer is not None else renderer.default_locale
    # Posted here first, so the chat shows what the customer got, then relayed as it is.
    posted = await message.answer(renderer.render(name, locale, customer=customer))
    await say.acknowledge(query)
    await staff_inbox.to_customer(posted, ticket, staff_ref(query.from_user, staff_role))


@router.callback_query(InboxAction.filter())
async def stale(query: CallbackQuery, say: Say) -> None:
    await say.notice(query, "stale_button")
