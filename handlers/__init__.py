"""aiogram routers, one module per conversation area, in the order they are tried."""

from aiogram import Router

from handlers import (
    consent,
    conversation,
    errors,
    fallback,
    feedback,
    membership,
    menu,
    onboarding,
    privacy,
    profile,
    rewards,
    staff,
    surveys,
)

# The catch-all fallback goes last: it answers whatever the others left.
ROUTERS: tuple[Router, ...] = (
    errors.router,
    membership.router,
    staff.router,
    onboarding.router,
    menu.router,
    consent.router,
    conversation.router,
    rewards.router,
    surveys.router,
    profile.router,
    privacy.router,
    # Last before the fallback: a customer's free text goes to staff while a ticket is open.
    feedback.router,
    fallback.router,
)
