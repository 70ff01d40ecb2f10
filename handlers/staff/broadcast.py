"""/broadcast: audience, message, a preview for one real customer, confirm; /campaigns."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InaccessibleMessage, Message
from jinja2 import TemplateError

from bot import staff_buttons
from bot.rendering import Renderer, StaffTemplateError
from bot.say import Say
from bot.staff_buttons import VALUED, BroadcastStep
from services.campaigns import AUDIENCE_KINDS, Audience, AudienceError, Campaigns
from services.campaigns import Message as Broadcast
from services.policy import Policy

router = Router(name=__name__)

TEMPLATE_PREFIX = "broadcast_"
TEXT_LIMIT = 4096


class BroadcastSteps(StatesGroup):
    audience = State()
    template = State()
    text = State()
    confirm = State()


def describe(audience: Audience, say: Say, policy: Policy) -> str:
    """The audience in the staff member's words, e.g. "RFM segment: At risk"."""
    kind = say.label(f"audience_{audience.kind}")
    if audience.value is None:
        return kind
    if audience.kind == "tier":
        value = policy.tier(audience.value).name(say.locale)
    elif audience.kind == "birthday":
        value = say.label(f"month_{audience.value}")
    else:
        value = say.label(f"{audience.kind}_{audience.value}")
    return f"{kind}: {value}"


@router.message(Command("broadcast"))
async def start(message: Message, state: FSMContext, say: Say) -> None:
    await state.set_state(BroadcastSteps.audience)
    await say(message, "staff_broadcast_audience", reply_markup=staff_buttons.audience_kinds(say))


@router.callback_query(BroadcastSteps.audience, BroadcastStep.filter(F.step == "kind"))
async def kind_chosen(
    query: CallbackQuery,
    callback_data: BroadcastStep,
    state: FSMContext,
    campaigns: Campaigns,
    policy: Policy,
    renderer: Renderer,
    say: Say,
) -> None:
    kind = callback_data.value
    if kind not in AUDIENCE_KINDS:
        await say.notice(query, "stale_button")
    elif kind in VALUED:
        await state.update_data(kind=kind)
        await say(
            query,
            "staff_broadcast_value",
            kind=say.label(f"audience_{kind}"),
            reply_markup=staff_buttons.audience_values(say, kind, policy),
        )
    else:
        await _audience_chosen(query, Audience(kind), state, campaigns, policy, renderer, say)


@router.callback_query(BroadcastSteps.audience, BroadcastStep.filter(F.step == "value"))
async def value_chosen(
    query: CallbackQuery,
    callback_data: BroadcastStep,
    state: FSMContext,
    campaigns: Campaigns,
    policy: Policy,
    renderer: Renderer,
    say: Say,
) -> None:
    kind = (await state.get_data()).get("kind")
    try:
        audience = campaigns.check(Audience(str(kind), callback_data.value))
    except AudienceError:
        await say.notice(query, "stale_button")
        return
    await _audience_chosen(query, audience, state, campaigns, policy, renderer, say)


async def _audience_chosen(
    query: CallbackQuery,
    audience: Audience,
    state: FSMContext,
    campaigns: Campaigns,
    policy: Policy,
    renderer: Renderer,
    say: Say,
) -> None:
    size = await campaigns.size(audience)
    described = describe(audience, say, policy)
    if size == 0:
        await say(
            query,
            "staff_broadcast_empty",
            audience=described,
            reply_markup=staff_buttons.audience_kinds(say),
        )
        return
    await state.update_data(audience=audience.as_json())
    await state.set_state(BroadcastSteps.template)
    await say(
        query,
        "staff_broadcast_template",
        audience=described,
        size=size,
        reply_markup=staff_buttons.templates(say, renderer.template_names(TEMPLATE_PREFIX)),
    )


@router.callback_query(BroadcastSteps.template, BroadcastStep.filter(F.step == "template"))
async def template_chosen(
    query: CallbackQuery,
    callback_data: BroadcastStep,
    state: FSMContext,
    campaigns: Campaigns,
    policy: Policy,
    renderer: Renderer,
    say: Say,
) -> None:
    name = callback_data.value
    if not name:
        await state.set_state(BroadcastSteps.text)
        await say(query, "staff_broadcast_write")
    elif name in renderer.template_names(TEMPLATE_PREFIX):
        await _preview(query, Broadcast(template=name), state, campaigns, policy, say)
    else:
        await say.notice(query, "stale_button")


@router.message(BroadcastSteps.text, F.text, ~F.text.startswith("/"))
async def text_written(
    message: Message, state: FSMContext, campaigns: Campaigns, policy: Policy, say: Say
) -> None:
    # As HTML, so the bold or links staff typed reach customers as they see them.
    await _preview(message, Broadcast(text=message.html_text), state, campaigns, policy, say)


@router.message(BroadcastSteps.text, ~F.text)
async def text_expected(message: Message, say: Say) -> None:
    await say(message, "staff_broadcast_write")


def _broken(error: TemplateError) -> tuple[int | None, str]:
    """What staff_broadcast_broken says of a text that cannot be sent: the line to fix, if
    known, and Jinja2's words for what is wrong there."""
    if isinstance(error, StaffTemplateError):
        return error.line, error.detail[:300]
    return None, str(error)[:300]


async def _preview(
    event: Message | CallbackQuery,
    broadcast: Broadcast,
    state: FSMContext,
    campaigns: Campaigns,
    policy: Policy,
    say: Say,
) -> None:
    audience = Audience.from_json((await state.get_data())["audience"])
    try:
        shown = await campaigns.preview(audience, broadcast)
    except TemplateError as error:
        line, why = _broken(error)
        await say(event, "staff_broadcast_broken", line=line, error=why)
        return
    if shown.customer is None or shown.text is None:
        await state.set_state(BroadcastSteps.audience)
        await say(
            event,
            "staff_broadcast_empty",
            audience=describe(audience, say, policy),
            reply_markup=staff_buttons.audience_kinds(say),
        )
        return
    if not shown.text or len(shown.text) > TEXT_LIMIT:
        await say(event, "staff_broadcast_broken", error=f"{len(shown.text)} / {TEXT_LIMIT}")
        return
    message = event.message if isinstance(event, CallbackQuery) else event
    if message is None or isinstance(message, InaccessibleMessage):
        return
    try:
        # Exactly what the customer will read: Telegram refuses broken HTML here, not later.
        await message.answer(shown.text)
    except TelegramBadRequest as error:
        await say(event, "staff_broadcast_broken", error=error.message[:300])
        return
    token = secrets.token_hex(8)
    await state.update_data(template=broadcast.template, text=broadcast.text, token=token)
    await state.set_state(BroadcastSteps.confirm)
    await say(
        event,
        "staff_broadcast_confirm",
        audience=describe(audience, say, policy),
        size=shown.size,
        customer=shown.customer,
        reply_markup=staff_buttons.confirm_broadcast(say, shown.size, token),
    )


@router.callback_query(BroadcastSteps.confirm, BroadcastStep.filter(F.step == "send"))
async def send(
    query: CallbackQuery,
    callback_data: BroadcastStep,
    state: FSMContext,
    campaigns: Campaigns,
    wake_sender: Callable[[], None],
    say: Say,
) -> None:
    data = await state.get_data()
    message = query.message
    if data.get("token") != callback_data.value or message is None:
        await say.notice(query, "stale_button")
        return
    thread = message.message_thread_id if isinstance(message, Message) else None
    try:
        campaign, launched = await campaigns.launch(
            callback_data.value,
            query.from_user.id,
            Audience.from_json(data["audience"]),
            Broadcast(template=data.get("template"), text=data.get("text")),
            locale=say.locale,
            report_chat_id=message.chat.id,
            report_thread_id=thread,
        )
    except TemplateError as error:
        # The preview rendered for one member; another one's name or points can still break
        # the text. Nothing was queued: the launch is one transaction.
        await state.set_state(BroadcastSteps.text)
        line, why = _broken(error)
        await say(query, "staff_broadcast_broken", line=line, error=why)
        return
    await state.clear()
    if not launched:
        await say.notice(query, "stale_button")
        return
    wake_sender()
    if isinstance(message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await message.edit_reply_markup(reply_markup=None)
    posted = await say(query, "staff_broadcast_started", campaign=campaign)
    if posted is not None:
        await campaigns.set_progress_message(campaign.id, posted.message_id)


@router.callback_query(StateFilter(BroadcastSteps), BroadcastStep.filter(F.step == "cancel"))
async def cancel_button(query: CallbackQuery, state: FSMContext, say: Say) -> None:
    await state.clear()
    await say(query, "staff_broadcast_cancelled")


@router.message(StateFilter(BroadcastSteps), Command("cancel"))
async def cancel_command(message: Message, state: FSMContext, say: Say) -> None:
    await state.clear()
    await say(message, "staff_broadcast_cancelled")


@router.message(
    StateFilter(BroadcastSteps.audience, BroadcastSteps.template, BroadcastSteps.confirm),
    ~F.text.startswith("/"),
)
async def use_the_buttons(message: Message, say: Say) -> None:
    await say(message, "staff_broadcast_use_buttons")


@router.callback_query(BroadcastStep.filter())
async def stale(query: CallbackQuery, say: Say) -> None:
    await say.notice(query, "stale_button")


@router.message(Command("campaigns"))
async def campaign_results(
    message: Message, command: CommandObject, campaigns: Campaigns, policy: Policy, say: Say
) -> None:
    raw = (command.args or "").strip().removeprefix("#")
    if raw and not raw.isdigit():
        await say(message, "staff_campaigns_usage")
        return
    if raw:
        results = await campaigns.results(int(raw))
        if results is None:
            await say(message, "staff_campaigns_usage")
            return
        audience = describe(Audience.from_json(results.campaign.audience), say, policy)
        await say(message, "staff_campaign", results=results, audience=audience)
        return
    recent = await campaigns.recent()
    await say(
        message,
        "staff_campaigns",
        campaigns=recent,
        audiences={c.id: describe(Audience.from_json(c.audience), say, policy) for c in recent},
    )
