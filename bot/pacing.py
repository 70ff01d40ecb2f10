"""Sending pace: the overall rate, the per-chat interval and Telegram's 429 pauses.

`LocalPacer` keeps the pace within one process. `RedisPacer` keeps it across every
instance sharing a Redis server, so that three instances draining one outbox still send
30 messages a second in all, not 30 each, and a 429 seen by one pauses them all. Its
slots are reserved by a Lua script on the server's clock, so instances never disagree
about time.

Slots are evenly spaced, but a sender whose event loop was held up wakes late, and late
messages going out together would exceed the rate in that second: Telegram answers 429
past its allowance for bursts, about one second's worth. So a message also waits, after
its slot, until fewer than `rate` messages went out in the last second. Every second
stays within the limit, and a sender held up for less than a second catches up at once
instead of losing the slots it missed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

# Forget per-chat times once this many chats are remembered (older ones have expired).
_CHATS_KEPT = 10_000
# Telegram takes about 20 messages a minute in one group (the staff group's alerts).
GROUP_INTERVAL = 3.0
# The window over which at most `rate` messages go out.
WINDOW = 1.0


class Pacer(Protocol):
    async def wait(self, chat_id: int) -> None:
        """Return when a message to `chat_id` may be sent."""
        ...

    async def pause(self, seconds: float) -> None:
        """Telegram answered 429: nobody sends for `seconds`."""
        ...

    async def paused(self) -> bool:
        """Whether a 429 pause is running now."""
        ...

    async def close(self) -> None: ...


class LocalPacer:
    def __init__(
        self,
        rate: float,
        per_chat_interval: float,
        *,
        group_interval: float = GROUP_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = 1.0 / rate
        self.per_chat_interval = per_chat_interval
        self.group_interval = group_interval
        self._monotonic = monotonic
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._chat_next: dict[int, float] = {}
        self.per_window = max(1, int(rate * WINDOW))
        self._sent: deque[float] = deque()

    async def wait(self, chat_id: int) -> None:
        while True:
            now = self._monotonic()
            ready = max(self._paused_until, self._chat_next.get(chat_id, 0.0))
            if ready > now:
                await asyncio.sleep(ready - now)
                continue
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)
            while True:
                crowded = self._crowded(self._monotonic())
                if crowded <= 0:
                    break
                await asyncio.sleep(crowded)
            # A 429 seen by another message while this one waited for its slot wins.
            now = self._monotonic()
            if self._paused_until <= now:
                self._sent.append(now)
                gap = self.group_interval if chat_id < 0 else self.per_chat_interval
                self._remember(chat_id, slot + gap)
                return

    def _crowded(self, now: float) -> float:
        """Seconds until the last window holds fewer than `rate` messages."""
        while self._sent and self._sent[0] <= now - WINDOW:
            self._sent.popleft()
        return self._sent[0] + WINDOW - now if len(self._sent) >= self.per_window else 0.0

    def _remember(self, chat_id: int, ready: float) -> None:
        if len(self._chat_next) >= _CHATS_KEPT:
            now = self._monotonic()
            self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}
        self._chat_next[chat_id] = ready

    async def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._monotonic() + seconds)

    async def paused(self) -> bool:
        return self._paused_until > self._monotonic()

    async def close(self) -> None:
        return None


# Returns a number of microseconds: > 0 "wait that long and ask again" (a pause or the
# chat's interval), <= 0 "your slot is reserved -(n + 1) µs from now".
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return paused - now end
local chat = tonumber(redis.call('GET', KEYS[3]) or '0')
if chat > now then return chat - now end
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local interval = tonumber(ARGV[1])
local chat_interval = tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%d', slot + interval), 'PX', 60000)
if chat_interval > 0 then
  local ttl = math.floor((slot - now + chat_interval) / 1000) + 1000
  redis.call('SET', KEYS[3], string.format('%d', slot + chat_interval), 'PX', ttl)
end
return -(slot - now) - 1
"""

_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_us = now + tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_us > paused then
  local ttl = math.floor(tonumber(ARGV[1]) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format("%d", until_us), 'PX', ttl)
end
return 1
"""


_PAUSED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return tonumber(redis.call('GET', KEYS[1]) or '0') > now and 1 or 0
"""


# Returns 0 when a message may go now (and counts it); else the microseconds to wait:
# below zero for a 429 pause (after which the message takes a new slot), above zero
# until the last second holds fewer than ARGV[1] messages.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return now - paused end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class RedisPacer:
    """The pace shared by every sender using the same Redis server and bot."""

    def __init__(
        self,
        redis_url: str,
        bot_id: int,
        rate: float,
        per_chat_interval: float,
        *,
        group_interval: float = GROUP_INTERVAL,
    ) -> None:
        from redis.asyncio import Redis

        self.redis: Any = Redis.from_url(redis_url)
        self.prefix = f"carebot:{bot_id}:send"
        self.interval_us = int(1_000_000 / rate)
        self.chat_interval_us = int(per_chat_interval * 1_000_000)
        self.group_interval_us = int(group_interval * 1_000_000)
        self._reserve = self.redis.register_script(_RESERVE)
        self._pause = self.redis.register_script(_PAUSE)
        self._admit = self.redis.register_script(_ADMIT)
        self._paused = self.redis.register_script(_PAUSED)
        self.per_window = max(1, int(rate * WINDOW))
        self._name = uuid.uuid4().hex
        self._count = 0

    async def wait(self, chat_id: int) -> None:
        keys = [f"{self.prefix}:next", f"{self.prefix}:paused", f"{self.prefix}:chat:{chat_id}"]
        while True:
            gap = self.group_interval_us if chat_id < 0 else self.chat_interval_us
            answer = int(await self._reserve(keys, [self.interval_us, gap]))
            if answer > 0:
                await asyncio.sleep(answer / 1_000_000)
                continue
            delay = -(answer + 1) / 1_000_000
            if delay > 0:
                await asyncio.sleep(delay)
            if await self._admitted():
                return

    async def _admitted(self) -> bool:
        """Wait until the last second is no longer crowded, then count this message; False
        when a 429 pause came meanwhile: the message waits it out and takes a new slot, as
        the messages released together at its end would be a burst."""
        self._count += 1
        member = f"{self._name}:{self._count}"
        keys = [f"{self.prefix}:sent", f"{self.prefix}:paused"]
        while True:
            wait = int(await self._admit(keys, [self.per_window, int(WINDOW * 1_000_000), member]))
            if wait == 0:
                return True
            await asyncio.sleep(abs(wait) / 1_000_000)
            if wait < 0:
                return False

    async def pause(self, seconds: float) -> None:
        await self._pause([f"{self.prefix}:paused"], [int(seconds * 1_000_000)])

    async def paused(self) -> bool:
        return bool(await self._paused([f"{self.prefix}:paused"]))

    async def close(self) -> None:
        await self.redis.aclose()
