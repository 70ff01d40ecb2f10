"""aiogram routers, one module per conversation area, in the order they are tried."""

from aiogram import Router

from handlers import consent, errors, fallback, membership, menu, onboarding, staff

# The catch-all fallback goes last: it answers whatever the others left.
ROUTERS: tuple[Router, ...] = (
    errors.router,
    membership.router,
    staff.router,
    onboarding.router,
    menu.router,
    consent.router,
    fallback.router,
)
