"""The staff side of tickets: answers relayed from a customer's topic (or a reply to a ticket
when the group has no topics), take and close, the apology button, cards and coupons."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import CallbackQuery, Message, User

from bot import buttons
from bot.filters import StaffChat
from bot.say import Say
from bot.staff_inbox import RELAYED, StaffInbox
from models import Role
from services.rewards import Rewards
from services.tickets import GrantOutcome, Outcome, StaffRef, Tickets, TicketView

router = Router(name=__name__)

NOT_A_COMMAND = F.func(lambda message: not (message.text or "").startswith("/"))


def staff_ref(user: User, role: Role) -> StaffRef:
    return StaffRef(user.id, user.full_name, role)


class CustomerConversation(Filter):
    """A message in a customer's topic, or a reply to a ticket's message in a group
    without topics; the ticket it belongs to is handed over as `ticket`."""

    async def __call__(
        self, message: Message, tickets: Tickets, staff_inbox: StaffInbox
    ) -> bool | dict[str, Any]:
        if message.is_topic_message and message.message_thread_id is not None:
            customer_id = await tickets.customer_of_thread(
                message.chat.id, message.message_thread_id
            )
            if customer_id is None:
                return False
            ticket = await tickets.current(customer_id) or await tickets.latest(customer_id)
        elif message.reply_to_message is not None:
            replied_to = message.reply_to_message.message_id
            ticket = await tickets.by_staff_message(replied_to)
            author = message.reply_to_message.from_user
            if ticket is None and message.bot and author and author.id == message.bot.id:
                await staff_inbox.posts_recorded()
                ticket = await tickets.by_staff_message(replied_to)
        else:
            return False
        return {"ticket": ticket} if ticket is not None else False


@router.message(
    StaffChat(Role.AGENT), NOT_A_COMMAND, F.content_type.in_(RELAYED), CustomerConversation()
)
async def relay(
    message: Message, ticket: TicketView, staff_role: Role, staff_inbox: StaffInbox
) -> None:
    assert message.from_user is not None
    await staff_inbox.to_customer(message, ticket, staff_ref(message.from_user, staff_role))


@router.message(
    StaffChat(Role.VIEWER), NOT_A_COMMAND, F.content_type.in_(RELAYED), CustomerConversation()
)
async def viewers_do_not_answer(message: Message, say: Say) -> None:
    await message.reply(say.text("staff_role_too_low", needed=Role.AGENT.value))


@router.callback_query(StaffChat(Role.AGENT), buttons.TicketAction.filter())
async def ticket_action(
    query: CallbackQuery,
    callback_data: buttons.TicketAction,
    staff_role: Role,
    tickets: Tickets,
    staff_inbox: StaffInbox,
    say: Say,
) -> None:
    if callback_data.action not in ("take", "close"):
        await say.notice(query, "stale_button")
        return
    await take_or_close(
        query,
        callback_data.action,
        callback_data.ticket,
        staff_ref(query.from_user, staff_role),
        tickets,
        staff_inbox,
        say,
    )


async def take_or_close(
    query: CallbackQuery,
    action: str,
    ticket_id: int,
    staff: StaffRef,
    tickets: Tickets,
    staff_inbox: StaffInbox,
    say: Say,
) -> None:
    """Take or close a ticket from a button, in the ticket's post or in /inbox alike."""
    if action == "take":
        change = await tickets.take(ticket_id, staff)
    else:
        change = await tickets.close(ticket_id, staff)
    if change.outcome is Outcome.UNKNOWN or change.ticket is None:
        await say.notice(query, "stale_button")
        return
    if change.outcome is not Outcome.DONE:
        await say.notice(query, f"staff_ticket_{change.outcome.value}", ticket=change.ticket)
        return
    await say.acknowledge(query, say.text(f"staff_ticket_{action}_done", ticket=change.ticket))
    await staff_inbox.ticket_changed(change.ticket)
    if action == "close":
        await staff_inbox.ask_rating(change.ticket)


@router.callback_query(StaffChat(Role.AGENT), buttons.GrantOffer.filter())
async def grant_offer(
    query: CallbackQuery,
    callback_data: buttons.GrantOffer,
    staff_role: Role,
    tickets: Tickets,
    staff_inbox: StaffInbox,
    say: Say,
) -> None:
    staff = staff_ref(query.from_user, staff_role)
    grant = await tickets.grant(callback_data.offer, staff)
    if grant.outcome is GrantOutcome.UNKNOWN or grant.offer is None:
        await say.notice(query, "stale_button")
        return
    if grant.outcome is not GrantOutcome.GRANTED:
        await say.notice(query, f"staff_offer_{grant.outcome.value}", offer=grant.offer)
        return
    await buttons.drop(query)
    await say.acknowledge(query, say.text("staff_offer_done"))
    await staff_inbox.offer_granted(grant.offer, staff)


@router.callback_query(StaffChat(Role.VIEWER), buttons.RefreshCard.filter())
async def refresh_card(
    query: CallbackQuery,
    callback_data: buttons.RefreshCard,
    staff_inbox: StaffInbox,
    say: Say,
) -> None:
    await staff_inbox.refresh_card(callback_data.customer)
    await say.acknowledge(query, say.text("staff_card_refreshed"))


@router.message(StaffChat(Role.VIEWER), Command("coupon"))
async def coupon(
    message: Message, command: CommandObject, rewards: Rewards, staff_inbox: StaffInbox, say: Say
) -> None:
    code = (command.args or "").strip()
    if not code:
        await message.reply(say.text("staff_coupon_usage"))
        return
    found = await rewards.find(code)
    if found is None:
        await message.reply(say.text("staff_coupon_unknown", code=code[:32]))
        return
    markup = (
        buttons.coupon_used(say.renderer, say.locale, found.code)
        if found.status == "issued"
        else None
    )
    await message.reply(say.text("staff_coupon", coupon=found), reply_markup=markup)


@router.callback_query(StaffChat(Role.AGENT), buttons.CouponUsed.filter())
async def coupon_used(
    query: CallbackQuery, callback_data: buttons.CouponUsed, rewards: Rewards, say: Say
) -> None:
    changed, found = await rewards.mark_used(callback_data.code, query.from_user.id)
    if found is None:
        await say.notice(query, "stale_button")
        return
    if not changed:
        await say.notice(query, "staff_coupon_already_used", coupon=found)
        return
    await say(query, "staff_coupon", coupon=found)
    await buttons.drop(query)


@router.callback_query(StaffChat(Role.VIEWER), buttons.TicketAction.filter())
@router.callback_query(StaffChat(Role.VIEWER), buttons.GrantOffer.filter())
@router.callback_query(StaffChat(Role.VIEWER), buttons.CouponUsed.filter())
async def role_too_low(query: CallbackQuery, say: Say) -> None:
    await say.notice(query, "staff_role_too_low", needed=Role.AGENT.value)
