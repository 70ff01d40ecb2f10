"""The garbage collector's settings for a long or busy process, once start-up is done."""

from __future__ import annotations

import gc


def settle_after_startup() -> None:
    """What start-up built (aiogram's and pydantic's models, SQLAlchemy's mappers and the
    rest) lives as long as the process: frozen, the collector's full passes leave it alone;
    walking it again and again under load cost the bot a third of an update's CPU, an
    import a seventh of its time. Work allocates short-lived objects by the thousand: the
    youngest generation is collected every 10,000 allocations instead of every 700
    (BENCHMARKS.md, chat and import)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
