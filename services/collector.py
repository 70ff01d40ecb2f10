"""The garbage collector's settings for a long or busy process, once start-up is done."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def settle_after_startup() -> None:
    """What start-up built (aiogram's and pydantic's models, SQLAlchemy's mappers and the
    rest) lives as long as the process: frozen, the collector's full passes leave it alone;
    walking it again and again under load cost the bot a third of an update's CPU, an
    import a seventh of its time. Work allocates short-lived objects by the thousand: the
    youngest generation is collected every 10,000 allocations instead of every 700
    (BENCHMARKS.md, chat and import). An import's checking process starts with it too:
    a batch's rows all live until the batch is checked, and with Python's own settings
    walking them again and again was a quarter of that process's time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector's automatic passes held off for a bulk load (the imports), which
    allocates some ten container objects a row, all freed by reference counting once
    their batch is written, and makes no reference cycles: walking them again and again
    was a tenth of a 1M-row import. Cycles made meanwhile elsewhere in the process (the
    bot answering while staff import a file) wait for the next pass after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
