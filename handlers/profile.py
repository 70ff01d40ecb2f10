"""Editing one's profile (客户档案): name, birthday, region, language and offers on or off."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot import buttons
from bot.keyboards import languages
from bot.say import Say
from models import Customer
from services.customers import Customers
from services.profile import Profile, ProfileError

router = Router(name=__name__)
router.message.filter(F.chat.type == ChatType.PRIVATE)
router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)

WORDS = F.text & ~F.text.startswith("/")


class ProfileSteps(StatesGroup):
    name = State()
    birthday = State()
    region = State()


_ASKED = {
    "name": ProfileSteps.name,
    "birthday": ProfileSteps.birthday,
    "region": ProfileSteps.region,
}


@router.callback_query(buttons.ProfileEdit.filter())
async def edit(
    query: CallbackQuery,
    callback_data: buttons.ProfileEdit,
    customer: Customer,
    customers: Customers,
    state: FSMContext,
    say: Say,
) -> None:
    field = callback_data.field
    if field in _ASKED:
        await state.set_state(_ASKED[field])
        await say(query, f"profile_ask_{field}")
    elif field == "language":
        await say(query, "language_choose", reply_markup=languages())
    elif field in ("marketing_on", "marketing_off"):
        await customers.set_marketing(customer.id, field == "marketing_on")
        await say(query, f"profile_{field}")
        await buttons.drop(query)
        await _show(query, customer.id, customers, say)
    else:
        await say.notice(query, "stale_button")


@router.message(ProfileSteps.name, WORDS)
@router.message(ProfileSteps.birthday, WORDS)
@router.message(ProfileSteps.region, WORDS)
async def value_given(
    message: Message,
    customer: Customer,
    customers: Customers,
    profile: Profile,
    state: FSMContext,
    say: Say,
) -> None:
    assert message.text is not None
    field = (await state.get_state() or "").rsplit(":", 1)[-1]
    setters = {
        "name": profile.set_name,
        "birthday": profile.set_birthday,
        "region": profile.set_region,
    }
    try:
        await setters[field](customer.id, message.text)
    except ProfileError as error:
        await say(
            message, "profile_invalid", field=field, reason=error.reason, given=message.text[:40]
        )
        return
    await state.clear()
    await say(message, "profile_saved")
    await _show(message, customer.id, customers, say)


@router.message(ProfileSteps.name, ~F.text)
@router.message(ProfileSteps.birthday, ~F.text)
@router.message(ProfileSteps.region, ~F.text)
async def words_expected(message: Message, say: Say) -> None:
    await say(message, "profile_text_expected")


async def _show(
    event: Message | CallbackQuery, customer_id: int, customers: Customers, say: Say
) -> None:
    fresh = await customers.get(customer_id)
    if fresh is not None:
        await say(
            event,
            "profile",
            customer=fresh,
            reply_markup=buttons.profile(
                say.renderer, say.locale, marketing=fresh.marketing_opt_in
            ),
        )
