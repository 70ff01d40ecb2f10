"""Report charts as PNG bytes, drawn with matplotlib's Agg backend.

Each chart is its own Figure (no pyplot state), so charts can be drawn in worker threads
while the event loop goes on. Words come from the caller's `label` function (the staff's
language); Chinese needs a CJK font (Noto Sans CJK, WenQuanYi, ...): without one,
`can_draw("zh")` is False and the caller should draw in English.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache, wraps
from typing import ParamSpec

import matplotlib
from matplotlib import colormaps, font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from services.reports import ChartData, Pareto, SegmentMap, Trend
from services.rfm import SEGMENT_RULES

Label = Callable[[str], str]
# The report charts in the order staff get them (/stats and the weekly digest).
CHARTS = ("segments", "pareto", "satisfaction", "response_times")
P = ParamSpec("P")

WIDTH, HEIGHT, DPI = 10.0, 6.0, 100
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "AR PL UMing CN",
)
_SEGMENT_COLORS = colormaps["tab20"]


@cache
def cjk_font() -> str | None:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _CJK_FONTS if name in installed), None)


def can_draw(locale: str) -> bool:
    """Whether charts in this language will show their words rather than empty boxes."""
    return locale != "zh" or cjk_font() is not None


# Fonts are matplotlib's global settings: two charts drawn at once must not mix them.
_drawing = threading.Lock()


@contextmanager
def _fonts() -> Iterator[None]:
    fonts = [cjk_font()] if cjk_font() else []
    with _drawing, matplotlib.rc_context({"font.family": [*fonts, "DejaVu Sans"]}):
        yield


def _chart(draw: Callable[P, bytes]) -> Callable[P, bytes]:
    @wraps(draw)
    def drawn(*args: P.args, **kwargs: P.kwargs) -> bytes:
        with _fonts():
            return draw(*args, **kwargs)

    return drawn


def _figure() -> Figure:
    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _empty(axes: Axes, label: Label) -> None:
    axes.text(0.5, 0.5, label("chart_no_data"), ha="center", va="center", fontsize=14)
    axes.set_xticks([])
    axes.set_yticks([])


@_chart
def segment_map(data: SegmentMap, label: Label) -> bytes:
    """The RFM map: customers per (R, FM) cell coloured by segment, and per segment."""
    figure = _figure()
    grid, bars = figure.subplots(1, 2, width_ratios=(1.1, 1))
    figure.suptitle(label("chart_segments_title"), fontsize=15)
    names = [rule.segment for rule in SEGMENT_RULES]
    colour: dict[str, tuple[float, float, float, float]] = {
        name: _SEGMENT_COLORS(i % 20) for i, name in enumerate(names)
    }
    colour["potential"] = (0.8, 0.8, 0.8, 1.0)
    for rule in SEGMENT_RULES:
        for r in range(rule.r_min, rule.r_max + 1):
            for fm in range(rule.fm_min, rule.fm_max + 1):
                grid.add_patch(
                    Rectangle(
                        (fm - 0.5, r - 0.5), 1, 1, facecolor=colour[rule.segment], edgecolor="w"
                    )
                )
                grid.text(fm, r, f"{data.cells.get((r, fm), 0)}", ha="center", va="center")
    grid.set_xlim(0.5, 5.5)
    grid.set_ylim(0.5, 5.5)
    grid.set_xticks(range(1, 6))
    grid.set_yticks(range(1, 6))
    grid.set_xlabel(label("chart_fm_axis"))
    grid.set_ylabel(label("chart_r_axis"))
    grid.set_aspect("equal")
    if not data.segments:
        _empty(bars, label)
    else:
        keys = list(data.segments)[::-1]
        bars.barh(
            [label(f"segment_{k}") for k in keys],
            [data.segments[k] for k in keys],
            color=[colour.get(k, (0.5, 0.5, 0.5, 1.0)) for k in keys],
        )
        bars.set_xlabel(label("chart_customers_axis"))
    grid.legend(
        handles=[Patch(color=colour[n], label=label(f"segment_{n}")) for n in names],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    return _png(figure)


@_chart
def pareto(data: Pareto, label: Label) -> bytes:
    """The ABC curve with the 80% and 95% cuts."""
    figure = _figure()
    axes = figure.subplots()
    axes.set_title(label("chart_pareto_title"), fontsize=15)
    if data.customers == 0:
        _empty(axes, label)
        return _png(figure)
    x = [100 * v for v in data.customer_share]
    y = [100 * v for v in data.revenue_share]
    axes.plot(x, y, color="tab:blue", linewidth=2.5)
    axes.plot([0, 100], [0, 100], color="grey", linestyle=":", linewidth=1)
    for cut, name in ((80, "A"), (95, "B")):
        axes.axhline(cut, color="tab:red" if name == "A" else "tab:orange", linestyle="--")
        axes.text(1, cut + 1, label(f"chart_abc_cut_{name.lower()}"), fontsize=9)
    if data.top_share_for_80 is not None:
        share = 100 * data.top_share_for_80
        axes.axvline(share, color="tab:red", linestyle=":")
        axes.annotate(
            f"{share:.0f}% → 80%",
            (share, 80),
            xytext=(share + 5, 60),
            arrowprops={"arrowstyle": "->"},
        )
    axes.set_xlim(0, 100)
    axes.set_ylim(0, 101)
    axes.set_xlabel(label("chart_pareto_x"))
    axes.set_ylabel(label("chart_pareto_y"))
    axes.grid(alpha=0.3)
    return _png(figure)


@_chart
def satisfaction(data: Trend, label: Label) -> bytes:
    """CSAT (1-5, left axis) and NPS (-100..100, right axis) per day, week or month."""
    figure = _figure()
    axes = figure.subplots()
    axes.set_title(label("chart_satisfaction_title"), fontsize=15)
    if not any(p.answers for p in data.points):
        _empty(axes, label)
        return _png(figure)
    ticks = [p.start.strftime("%Y-%m" if data.bucket == "month" else "%m-%d") for p in data.points]
    positions = list(range(len(ticks)))
    csat = [(i, p.csat) for i, p in enumerate(data.points) if p.csat is not None]
    nps = [(i, p.nps) for i, p in enumerate(data.points) if p.nps is not None]
    left = axes
    right = axes.twinx()
    if csat:
        left.plot(
            *zip(*csat, strict=True), marker="o", color="tab:green", label=label("chart_csat")
        )
    if nps:
        right.plot(
            *zip(*nps, strict=True), marker="s", color="tab:purple", label=label("chart_nps")
        )
    left.set_ylim(1, 5.2)
    right.set_ylim(-100, 100)
    left.set_ylabel(label("chart_csat"))
    right.set_ylabel(label("chart_nps"))
    step = max(1, len(ticks) // 12)
    left.set_xticks(positions[::step], ticks[::step], rotation=30)
    left.grid(alpha=0.3)
    handles = [*left.get_lines(), *right.get_lines()]
    left.legend(handles=handles, labels=[str(h.get_label()) for h in handles], loc="lower left")
    return _png(figure)


@_chart
def response_times(minutes: Sequence[float], sla_minutes: int, label: Label) -> bytes:
    """How long customers waited for a first answer, against the SLA."""
    figure = _figure()
    axes = figure.subplots()
    axes.set_title(label("chart_response_title"), fontsize=15)
    if not minutes:
        _empty(axes, label)
        return _png(figure)
    ordered = sorted(minutes)
    median = ordered[len(ordered) // 2]
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    top = max(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2 * sla_minutes)
    axes.hist([min(m, top) for m in ordered], bins=30, range=(0, top), color="tab:blue")
    axes.axvline(sla_minutes, color="tab:red", linewidth=2, label=label("chart_sla"))
    axes.axvline(median, color="tab:green", linestyle="--", label=label("chart_median"))
    axes.axvline(p90, color="tab:orange", linestyle="--", label=label("chart_p90"))
    axes.set_xlabel(label("chart_minutes_axis"))
    axes.set_ylabel(label("chart_tickets_axis"))
    axes.legend()
    axes.grid(alpha=0.3)
    return _png(figure)


def report_charts(data: ChartData, label: Label) -> list[tuple[str, bytes]]:
    """Every report chart as (name, PNG), in the order of CHARTS."""
    return list(
        zip(
            CHARTS,
            [
                segment_map(data.segments, label),
                pareto(data.pareto, label),
                satisfaction(data.trend, label),
                response_times(data.waits, data.sla_minutes, label),
            ],
            strict=True,
        )
    )
