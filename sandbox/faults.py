"""Flood limits and injected failures of the emulator: token buckets, 429s, 5xx bursts."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.api_params import ApiError

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class _Bucket:
    """Holds up to `capacity` sends and refills at `rate` per second; bursts drain it."""

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until one send fits (0 when it fits now)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class RateLimiter:
    """Telegram's sending limits: overall per bot, per private chat, per group."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self.monotonic = monotonic
        self.enabled = False
        self.global_per_second = 30.0
        self.per_chat_per_second = 1.0
        self.group_per_minute = 20.0
        self.private_burst = 3.0
        self._buckets: dict[tuple[int, int | None], _Bucket] = {}
        self._refused_until: dict[tuple[int, int | None], float] = {}

    def configure(
        self,
        enabled: bool,
        global_per_second: float,
        per_chat_per_second: float,
        group_per_minute: float,
        private_burst: float,
    ) -> None:
        self.enabled = enabled
        self.global_per_second = global_per_second
        self.per_chat_per_second = per_chat_per_second
        self.group_per_minute = group_per_minute
        self.private_burst = private_burst
        self._buckets.clear()
        self._refused_until.clear()

    def check(self, bot_id: int, chat_id: int, is_group: bool) -> None:
        """Count one send, or raise 429 with the whole seconds to wait."""
        if not self.enabled:
            return
        now = self.monotonic()
        scopes: list[tuple[int, int | None]] = [(bot_id, chat_id), (bot_id, None)]
        for scope in scopes:
            until = self._refused_until.get(scope, 0.0)
            if now < until:
                raise _too_many(until - now)
        buckets = [self._bucket(scope, is_group, now) for scope in scopes]
        for scope, bucket in zip(scopes, buckets, strict=True):
            wait = bucket.wait(now)
            if wait > 0:
                error = _too_many(wait)
                self._refused_until[scope] = now + (error.retry_after or 1)
                raise error
        for bucket in buckets:
            bucket.take()

    def _bucket(self, scope: tuple[int, int | None], is_group: bool, now: float) -> _Bucket:
        bucket = self._buckets.get(scope)
        if bucket is None:
            if scope[1] is None:
                capacity, rate = self.global_per_second, self.global_per_second
            elif is_group:
                capacity, rate = self.group_per_minute, self.group_per_minute / 60
            else:
                capacity, rate = self.private_burst, self.per_chat_per_second
            bucket = self._buckets[scope] = _Bucket(max(capacity, 1.0), rate, now)
        return bucket


def _too_many(wait: float) -> ApiError:
    seconds = max(1, math.ceil(wait))
    return ApiError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)


@dataclass
class Fault:
    """Answer the next `count` calls of `method` (any method when None) with an error."""

    method: str | None
    status: int
    count: int
    description: str | None = None
    retry_after: int | None = None

    def error(self) -> ApiError:
        if self.status == 429:
            seconds = self.retry_after or 1
            text = self.description or f"Too Many Requests: retry after {seconds}"
            return ApiError(429, text, retry_after=seconds)
        text = self.description or _DEFAULT_DESCRIPTIONS.get(self.status, f"Error {self.status}")
        return ApiError(self.status, text, retry_after=self.retry_after)


class Faults:
    def __init__(self) -> None:
        self._queue: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._queue.append(fault)

    def clear(self) -> None:
        self._queue.clear()

    def take(self, method: str) -> ApiError | None:
        for fault in self._queue:
            if fault.method is None or fault.method.lower() == method.lower():
                fault.count -= 1
                if fault.count <= 0:
                    self._queue.remove(fault)
                return fault.error()
        return None
