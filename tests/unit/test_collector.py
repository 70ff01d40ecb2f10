"""The collector's passes held off for a bulk load, and as they were after it."""

from __future__ import annotations

import gc

import pytest

from services.collector import collector_paused


def test_the_collector_waits_for_a_bulk_load_and_runs_again_after_it() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("the load failed")
    assert gc.isenabled()


def test_a_collector_already_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
