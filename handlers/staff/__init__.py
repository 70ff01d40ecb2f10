"""Staff commands, answered only in the staff group and only to staff members."""

from aiogram import Router

from handlers.staff import help as help_

router = Router(name=__name__)
router.include_routers(help_.router)
