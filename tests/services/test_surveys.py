"""Surveys: synced from the policy, answered one question at a time with every answer
checked, resumed where they stopped, refused after closing, and summed up for reports."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import Survey, SurveyQuestion
from models.database import Database
from services.clock import FrozenClock
from services.policy import Policy
from services.surveys import Status, Surveys
from tests.services.care_helpers import Care, care


@pytest.fixture
async def shop(db: Database, policy: Policy, clock: FrozenClock) -> Care:
    shop = care(db, policy, clock)
    await shop.surveys.sync(policy.surveys)
    return shop


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def answer_all(
    surveys: Surveys, customer: int, *, rating: int, nps: int, choice: int
) -> None:
    offer = (await surveys.offers(customer))[0]
    step = (await surveys.begin(customer, offer.survey_id)).step
    assert step is not None and step.question is not None
    for value in (rating, nps, choice):
        assert step is not None and step.question is not None
        step = (
            await surveys.answer(customer, step.response_id, step.question.id, value=value)
        ).step
    assert step is not None and step.question is not None
    await surveys.answer(customer, step.response_id, step.question.id, text=f"note {customer}")


async def test_sync_creates_the_policy_surveys_once(shop: Care, policy: Policy) -> None:
    assert await shop.surveys.sync(policy.surveys) == 0
    assert await count(shop.db, Survey) == 1
    assert await count(shop.db, SurveyQuestion) == 4


async def test_a_survey_is_answered_step_by_step_with_progress(shop: Care) -> None:
    alice = await shop.customer(1)
    offers = await shop.surveys.offers(alice)
    assert [(o.key, o.response_id, o.total) for o in offers] == [("post_purchase", None, 4)]
    started = await shop.surveys.begin(alice, offers[0].survey_id)
    step = started.step
    assert started.status is Status.OK and step is not None and step.question is not None
    assert (step.number, step.total, step.question.kind) == (1, 4, "rating")
    step = (await shop.surveys.answer(alice, step.response_id, step.question.id, value=5)).step
    assert step is not None and step.question is not None
    assert (step.number, step.question.kind) == (2, "nps")


async def test_an_interrupted_survey_resumes_where_it_stopped(shop: Care) -> None:
    alice = await shop.customer(1)
    offer = (await shop.surveys.offers(alice))[0]
    step = (await shop.surveys.begin(alice, offer.survey_id)).step
    assert step is not None and step.question is not None
    await shop.surveys.answer(alice, step.response_id, step.question.id, value=4)
    waiting = await shop.surveys.offers(alice)
    assert [(o.response_id, o.answered) for o in waiting] == [(step.response_id, 1)]
    resumed = await shop.surveys.resume(alice, step.response_id)
    assert resumed.step is not None and resumed.step.number == 2
    again = await shop.surveys.begin(alice, offer.survey_id)
    assert again.step is not None and again.step.response_id == step.response_id


@pytest.mark.parametrize(("value", "ok"), [(0, False), (1, True), (5, True), (6, False)])
async def test_a_rating_must_be_one_to_five(shop: Care, value: int, ok: bool) -> None:
    alice = await shop.customer(1)
    step = (await shop.surveys.begin(alice, (await shop.surveys.offers(alice))[0].survey_id)).step
    assert step is not None and step.question is not None
    result = await shop.surveys.answer(alice, step.response_id, step.question.id, value=value)
    assert (result.status is Status.OK) is ok
    if not ok:
        assert result.status is Status.OUT_OF_RANGE and result.step == step


async def test_only_the_current_question_of_ones_own_response_is_taken(shop: Care) -> None:
    alice = await shop.customer(1)
    bob = await shop.customer(2, "Bob")
    step = (await shop.surveys.begin(alice, (await shop.surveys.offers(alice))[0].survey_id)).step
    assert step is not None and step.question is not None
    first = step.question.id
    assert (
        await shop.surveys.answer(bob, step.response_id, first, value=3)
    ).status is Status.UNKNOWN
    assert (
        await shop.surveys.answer(alice, step.response_id, first + 2, value=1)
    ).status is Status.NOT_CURRENT
    await shop.surveys.answer(alice, step.response_id, first, value=3)
    assert (
        await shop.surveys.answer(alice, step.response_id, first, value=3)
    ).status is Status.ALREADY
    assert (
        await shop.surveys.answer(alice, step.response_id, first + 1, skip=True)
    ).status is Status.REQUIRED


async def test_the_optional_text_can_be_skipped_and_completes_once(shop: Care) -> None:
    alice = await shop.customer(1)
    offer = (await shop.surveys.offers(alice))[0]
    step = (await shop.surveys.begin(alice, offer.survey_id)).step
    for value in (4, 9, 1):
        assert step is not None and step.question is not None
        step = (
            await shop.surveys.answer(alice, step.response_id, step.question.id, value=value)
        ).step
    assert step is not None and step.question is not None and step.question.optional
    done = await shop.surveys.answer(alice, step.response_id, step.question.id, skip=True)
    assert done.status is Status.OK and done.step is not None and done.step.completed
    assert await shop.surveys.offers(alice) == []
    again = await shop.surveys.begin(alice, offer.survey_id)
    assert again.status is Status.COMPLETED


async def test_answers_after_the_survey_closed_are_refused(shop: Care, clock: FrozenClock) -> None:
    alice = await shop.customer(1)
    step = (await shop.surveys.begin(alice, (await shop.surveys.offers(alice))[0].survey_id)).step
    assert step is not None and step.question is not None
    assert await shop.surveys.close("post_purchase")
    clock.advance(timedelta(seconds=1))
    result = await shop.surveys.answer(alice, step.response_id, step.question.id, value=5)
    assert result.status is Status.CLOSED
    assert (await shop.surveys.resume(alice, step.response_id)).status is Status.CLOSED
    assert await shop.surveys.offers(alice) == []
    assert await shop.surveys.reopen("post_purchase")
    assert (await shop.surveys.resume(alice, step.response_id)).status is Status.OK


async def test_an_invitation_is_one_response_per_instance(shop: Care) -> None:
    alice = await shop.customer(1)
    first = await shop.surveys.invite(alice, "post_purchase", "purchase:7")
    assert first is not None
    assert await shop.surveys.invite(alice, "post_purchase", "purchase:7") is None
    assert await shop.surveys.invite(alice, "no_such_survey", "purchase:8") is None
    offers = await shop.surveys.offers(alice)
    assert [o.response_id for o in offers] == [first, None]


async def test_results_give_csat_nps_choices_and_texts(shop: Care) -> None:
    answers = [(5, 10, 0), (4, 9, 1), (2, 3, 1), (5, 7, 2)]
    for n, (rating, nps, choice) in enumerate(answers):
        person = await shop.customer(10 + n, f"P{n}")
        await answer_all(shop.surveys, person, rating=rating, nps=nps, choice=choice)
    results = await shop.surveys.results("post_purchase")
    assert results is not None and (results.responses, results.completed) == (4, 4)
    rating, nps, choice, text = results.questions
    assert rating.average == 4.0 and rating.distribution == {1: 0, 2: 1, 3: 0, 4: 1, 5: 2}
    assert nps.nps == 25.0  # 2 promoters, 1 detractor of 4
    assert choice.choices == {"product": 1, "service": 2, "price": 1, "delivery": 0}
    people = [await shop.customers.by_telegram(10 + n) for n in range(4)]
    assert sorted(text.texts) == sorted(f"note {p.id}" for p in people if p)
    assert await shop.surveys.results("nope") is None
