"""Broadcast progress in the chat where it was confirmed: one message kept up to date while
the sender works through the campaign, then the final delivered/failed/blocked counts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest

from bot.rendering import Renderer
from models import Campaign
from services.campaigns import Campaigns, Progress

log = logging.getLogger("carebot.campaigns")

# A group takes about 20 messages a minute from a bot, edits included: one edit per
# campaign every few seconds leaves room for everything else.
EDIT_INTERVAL = 5.0


class CampaignReporter:
    def __init__(
        self,
        bot: Bot,
        campaigns: Campaigns,
        renderer: Renderer,
        *,
        poll: float = 1.0,
        edit_interval: float = EDIT_INTERVAL,
    ) -> None:
        self.bot = bot
        self.campaigns = campaigns
        self.renderer = renderer
        self.poll = poll
        self.edit_interval = edit_interval
        self._shown: dict[int, tuple[Progress, float]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                log.exception("campaign progress check failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll)

    async def check(self) -> None:
        """Finish the campaigns with nothing left to send; show progress on the others.
        With several instances, `finish` lets exactly one of them post the final counts."""
        for campaign in await self.campaigns.active():
            progress = await self.campaigns.progress(campaign.id)
            if progress.pending == 0:
                if await self.campaigns.finish(campaign.id, progress):
                    await self._post(campaign, progress)
                self._shown.pop(campaign.id, None)
                continue
            shown = self._shown.get(campaign.id)
            now = time.monotonic()
            if shown is None or (shown[0] != progress and now - shown[1] >= self.edit_interval):
                self._shown[campaign.id] = (progress, now)
                await self._edit(campaign, progress)

    def _text(self, template: str, campaign: Campaign, progress: Progress) -> str:
        return self.renderer.render(template, campaign.locale, campaign=campaign, p=progress)

    async def _edit(self, campaign: Campaign, progress: Progress) -> None:
        if campaign.report_chat_id is None or campaign.progress_message_id is None:
            return
        with contextlib.suppress(TelegramBadRequest):
            await self.bot.edit_message_text(
                self._text("staff_broadcast_progress", campaign, progress),
                chat_id=campaign.report_chat_id,
                message_id=campaign.progress_message_id,
            )

    async def _post(self, campaign: Campaign, progress: Progress) -> None:
        if campaign.report_chat_id is None:
            return
        await self._edit(campaign, progress)
        try:
            await self.bot.send_message(
                campaign.report_chat_id,
                self._text("staff_broadcast_done", campaign, progress),
                message_thread_id=campaign.report_thread_id,
            )
        except TelegramAPIError as error:
            log.warning("campaign %s result not posted: %s", campaign.id, error)
