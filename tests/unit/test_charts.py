"""Report charts: PNG images of a fixed size, with data or with a "no data" note."""

from __future__ import annotations

import struct
from datetime import date

from services import charts
from services.reports import Pareto, SegmentMap, Trend, TrendPoint


def size_of(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def label(key: str) -> str:
    return key.replace("_", " ")


def test_every_chart_is_a_png_of_the_same_size() -> None:
    images = [
        charts.segment_map(SegmentMap({(5, 5): 3, (1, 1): 7}, {"champions": 3, "lost": 7}), label),
        charts.pareto(Pareto([0, 0.5, 1], [0, 0.9, 1], 2, 0.5), label),
        charts.satisfaction(
            Trend(
                "week",
                [
                    TrendPoint(date(2026, 4, 6), 4.5, 30.0, 4),
                    TrendPoint(date(2026, 4, 13), None, None, 0),
                ],
            ),
            label,
        ),
        charts.response_times([3.0, 12.0, 45.0, 200.0], 30, label),
    ]
    assert {size_of(png) for png in images} == {(1000, 600)}


def test_empty_data_still_draws() -> None:
    empty = [
        charts.segment_map(SegmentMap({}, {}), label),
        charts.pareto(Pareto([0.0], [0.0], 0, None), label),
        charts.satisfaction(Trend("day", []), label),
        charts.response_times([], 30, label),
    ]
    assert all(size_of(png) == (1000, 600) for png in empty)


def test_english_can_always_be_drawn() -> None:
    assert charts.can_draw("en")
    assert charts.can_draw("zh") == (charts.cjk_font() is not None)
