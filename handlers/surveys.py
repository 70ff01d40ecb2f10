"""Satisfaction surveys (满意度调查): /survey offers them, one question at a time with its
progress, buttons for closed questions, and a half-answered survey goes on where it stopped."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot import buttons
from bot.keyboards import Menu
from bot.say import Say
from models import Customer
from services.surveys import TEXT_LIMIT, Result, Status, Step, Surveys

router = Router(name=__name__)
router.message.filter(F.chat.type == ChatType.PRIVATE)
router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)

WORDS = F.text & ~F.text.startswith("/")


class SurveySteps(StatesGroup):
    buttons = State()  # a closed question is asked: the answer is a button
    text = State()  # a free-text question is asked


@router.message(Command("survey"))
@router.callback_query(Menu.filter(F.item == "survey"))
async def show_surveys(
    event: Message | CallbackQuery, customer: Customer, surveys: Surveys, say: Say
) -> None:
    offers = await surveys.offers(customer.id)
    if not offers:
        await say(event, "survey_none")
        return
    choices = []
    for offer in offers:
        label = offer.title_in(say.locale)
        if offer.response_id is not None and offer.answered:
            label = say.text(
                "survey_resume_label", title=label, done=offer.answered, total=offer.total
            )
        data = (
            buttons.SurveyOpen(response=offer.response_id)
            if offer.response_id is not None
            else buttons.SurveyOpen(survey=offer.survey_id)
        )
        choices.append((label, data))
    await say(
        event,
        "survey_list",
        offers=offers,
        reply_markup=buttons.survey_list(say.renderer, say.locale, choices),
    )


@router.callback_query(buttons.SurveyOpen.filter())
async def open_survey(
    query: CallbackQuery,
    callback_data: buttons.SurveyOpen,
    customer: Customer,
    surveys: Surveys,
    state: FSMContext,
    say: Say,
) -> None:
    if callback_data.response:
        result = await surveys.resume(customer.id, callback_data.response)
    else:
        result = await surveys.begin(customer.id, callback_data.survey)
    await _go_on(query, result, state, say)


@router.callback_query(buttons.SurveyAnswer.filter())
async def answered(
    query: CallbackQuery,
    callback_data: buttons.SurveyAnswer,
    customer: Customer,
    surveys: Surveys,
    state: FSMContext,
    say: Say,
) -> None:
    result = await surveys.answer(
        customer.id, callback_data.response, callback_data.question, value=callback_data.value
    )
    await _go_on(query, result, state, say)


@router.callback_query(buttons.SurveySkip.filter())
async def skipped(
    query: CallbackQuery,
    callback_data: buttons.SurveySkip,
    customer: Customer,
    surveys: Surveys,
    state: FSMContext,
    say: Say,
) -> None:
    result = await surveys.answer(
        customer.id, callback_data.response, callback_data.question, skip=True
    )
    await _go_on(query, result, state, say)


@router.message(SurveySteps.text, WORDS)
async def text_answered(
    message: Message, customer: Customer, surveys: Surveys, state: FSMContext, say: Say
) -> None:
    assert message.text is not None
    if len(message.text) > TEXT_LIMIT:
        await say(message, "too_long", length=len(message.text), limit=TEXT_LIMIT)
        return
    data = await state.get_data()
    result = await surveys.answer(
        customer.id, int(data.get("response", 0)), int(data.get("question", 0)), text=message.text
    )
    await _go_on(message, result, state, say)


@router.message(SurveySteps.text, ~F.text)
async def text_expected(message: Message, say: Say) -> None:
    await say(message, "survey_text_expected")


@router.message(SurveySteps.buttons, WORDS)
@router.message(SurveySteps.buttons, ~F.text)
async def buttons_expected(message: Message, say: Say) -> None:
    await say(message, "survey_use_buttons")


async def _go_on(
    event: Message | CallbackQuery, result: Result, state: FSMContext, say: Say
) -> None:
    """Answer a step's result: the next question, the end, or why nothing changed."""
    status, step = result.status, result.step
    if status is Status.OK and step is not None:
        if step.completed:
            await state.clear()
            await say(event, "survey_thanks", step=step)
        else:
            await _ask(event, step, state, say)
        return
    if isinstance(event, CallbackQuery) and status in _NOTICES:
        await say.notice(event, _NOTICES[status])
        return
    if status is not Status.OUT_OF_RANGE:
        await state.clear()
    await say(event, _MESSAGES.get(status, "survey_moved_on"))


_NOTICES = {
    Status.ALREADY: "survey_already_answered",
    Status.NOT_CURRENT: "stale_button",
    Status.OUT_OF_RANGE: "survey_out_of_range",
    Status.REQUIRED: "survey_required",
    Status.UNKNOWN: "stale_button",
}
_MESSAGES = {
    Status.CLOSED: "survey_closed",
    Status.COMPLETED: "survey_completed_before",
    Status.OUT_OF_RANGE: "survey_text_expected",
}


async def _ask(event: Message | CallbackQuery, step: Step, state: FSMContext, say: Say) -> None:
    question = step.question
    assert question is not None
    free_text = question.kind == "text"
    await state.set_state(SurveySteps.text if free_text else SurveySteps.buttons)
    await state.set_data({"response": step.response_id, "question": question.id})
    await say(
        event,
        "survey_question",
        step=step,
        question=question,
        text=question.label(say.locale),
        title=step.title_in(say.locale),
        reply_markup=buttons.survey_question(say.renderer, say.locale, step.response_id, question),
    )
