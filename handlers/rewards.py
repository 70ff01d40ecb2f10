"""Rewards (积分兑换): the catalogue, a confirmation, and the coupon for the points."""

from __future__ import annotations

import secrets

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot import buttons
from bot.keyboards import Menu
from bot.say import Say
from models import Customer
from services.policy import Policy
from services.rewards import RedeemStatus, Rewards

router = Router(name=__name__)
router.message.filter(F.chat.type == ChatType.PRIVATE)
router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)


@router.message(Command("rewards"))
@router.callback_query(Menu.filter(F.item == "rewards"))
async def show_rewards(
    event: Message | CallbackQuery, customer: Customer, rewards: Rewards, say: Say
) -> None:
    catalogue = await rewards.catalogue(customer.id)
    offered = [item.reward for item in catalogue.items if item.left != 0]
    await say(
        event,
        "rewards",
        catalogue=catalogue,
        reply_markup=buttons.rewards(say.renderer, say.locale, offered) if offered else None,
    )


@router.callback_query(buttons.RewardPick.filter())
async def reward_picked(
    query: CallbackQuery,
    callback_data: buttons.RewardPick,
    customer: Customer,
    rewards: Rewards,
    policy: Policy,
    say: Say,
) -> None:
    reward = policy.reward(callback_data.key)
    if reward is None:
        await say.notice(query, "stale_button")
        return
    catalogue = await rewards.catalogue(customer.id)
    if catalogue.balance < reward.cost:
        await say(
            query,
            "reward_not_enough",
            reward=reward,
            balance=catalogue.balance,
            missing=reward.cost - catalogue.balance,
        )
        return
    nonce = secrets.token_urlsafe(6)
    await say(
        query,
        "reward_confirm",
        reward=reward,
        balance=catalogue.balance,
        reply_markup=buttons.confirm_reward(say.renderer, say.locale, reward, nonce),
    )


@router.callback_query(buttons.RewardConfirm.filter())
async def reward_confirmed(
    query: CallbackQuery,
    callback_data: buttons.RewardConfirm,
    customer: Customer,
    rewards: Rewards,
    say: Say,
) -> None:
    result = await rewards.redeem(
        customer.id, callback_data.key, f"{customer.id}:{callback_data.nonce}"[:64]
    )
    if result.status is RedeemStatus.UNKNOWN:
        await say.notice(query, "stale_button")
        return
    await say(
        query,
        f"reward_{result.status.value}",
        result=result,
        reward=result.reward,
        balance=result.balance,
        missing=result.missing,
    )
    await buttons.drop(query)


@router.callback_query(buttons.RewardCancel.filter())
async def reward_cancelled(query: CallbackQuery, say: Say) -> None:
    await say(query, "reward_cancelled")
    await buttons.drop(query)
