"""Staff commands, in the staff group and in a staff member's private chat with the bot;
bot/permissions.py decides in one place who may use which."""

from aiogram import Router

from bot.permissions import StaffGate
from handlers.staff import broadcast, customers, imports, inbox, queue, reports, team
from handlers.staff import help as help_

router = Router(name=__name__)
router.message.outer_middleware(StaffGate())
router.callback_query.outer_middleware(StaffGate())
# Conversations first: text typed during /broadcast or an /inbox answer is theirs, even in
# a customer's topic where staff text is otherwise relayed to the customer.
router.include_routers(
    broadcast.router,
    queue.router,
    team.router,
    customers.router,
    reports.router,
    imports.router,
    inbox.router,
    help_.router,
)
