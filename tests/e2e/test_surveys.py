"""A four-question survey in the chat: answered with buttons and words, interrupted and
resumed where it stopped, and refused politely once closed."""

from __future__ import annotations

from datetime import timedelta

from bot.app import Carebot
from sandbox.emulator import Emulator
from services.clock import FrozenClock
from tests.e2e.care import registered


async def test_a_survey_is_answered_interrupted_and_resumed(
    telegram: Emulator, carebot: Carebot
) -> None:
    alice = telegram.customer(2201, "Alice", language_code="en")
    await registered(carebot, alice)
    offered = await alice.says("/survey")
    assert offered.buttons == [[("How was your purchase?", offered.buttons[0][0][1])]]
    first = await alice.presses("How was your purchase?")
    assert "1/4" in first.text and "satisfied" in first.text
    assert [label for label, _ in first.buttons[0]] == ["1", "2", "3", "4", "5"]
    second = await alice.presses("4")
    assert "2/4" in second.text and "recommend" in second.text

    assert "answer with the buttons" in (await alice.says("nine")).text
    assert "My points" in (await alice.says("/points")).text

    again = await alice.says("/survey")
    assert again.buttons[0][0][0] == "Continue: How was your purchase? (1/4)"
    resumed = await alice.presses("Continue")
    assert "2/4" in resumed.text
    third = await alice.presses("9")
    assert "3/4" in third.text and [row[0][0] for row in third.buttons][:2] == [
        "Products",
        "Service",
    ]
    fourth = await alice.presses("Service")
    assert "4/4" in fourth.text and fourth.buttons == [[("Skip", fourth.buttons[0][0][1])]]
    thanks = await alice.says("More seats by the window, please")
    assert "thank you very much" in thanks.text
    assert "no surveys for you" in (await alice.says("/survey")).text

    results = await carebot.surveys.results("post_purchase")
    assert results is not None and results.completed == 1
    rating, nps, choice, text = results.questions
    assert (rating.average, nps.nps, choice.choices["service"]) == (4.0, 100.0, 1)
    assert text.texts == ("More seats by the window, please",)


async def test_old_and_forged_survey_buttons_change_nothing(
    telegram: Emulator, carebot: Carebot
) -> None:
    bob = telegram.customer(2202, "Bob", language_code="en")
    await registered(carebot, bob)
    await bob.says("/survey")
    first = await bob.presses("How was your purchase?")
    ((_, five),) = [b for b in first.buttons[0] if b[0] == "5"]
    assert five is not None
    forged = five.rsplit(":", 1)[0] + ":9"
    query = telegram.user_presses(bob.user_id, bob.chat_id, first.message_id, forged)
    answer = await telegram.until(lambda: query.answer, 5)
    assert answer is not None and "not one of the options" in answer["text"]
    await bob.presses("5")
    query = telegram.user_presses(bob.user_id, bob.chat_id, first.message_id, five)
    answer = await telegram.until(lambda: query.answer, 5)
    assert answer is not None and "already answered" in answer["text"]
    progress = await bob.says("/survey")
    assert "(1/4)" in progress.buttons[0][0][0]


async def test_answers_after_the_survey_closed_are_refused_politely(
    telegram: Emulator, carebot: Carebot, clock: FrozenClock
) -> None:
    carol = telegram.customer(2203, "Carol", language_code="zh-hans")
    await registered(carebot, carol)
    await carol.says("/survey")
    first = await carol.presses("购物体验调查")
    assert "1/4" in first.text
    await carebot.surveys.close("post_purchase")
    clock.advance(timedelta(seconds=1))
    refused = await carol.presses("3")
    assert "问卷已经结束" in refused.text
    assert "没有需要您填写的问卷" in (await carol.says("/survey")).text
