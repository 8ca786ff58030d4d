"""The heart-rate trend as a server-rendered SVG chart: the per-minute mean as a line, the
minute's lowest and highest rate as a band, and the default alarm limits as dashed lines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from rekam.his.monitoring import HeartRateTrend

BRADY_LINE = 50.0
TACHY_LINE = 100.0


@dataclass(frozen=True)
class HeartRateChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    mean_line: str  # polyline points
    band: str  # polygon points (max forward, min backward)
    limits: tuple[tuple[float, str], ...]  # y and label of the alarm lines
    y_ticks: tuple[tuple[float, str], ...]
    x_labels: tuple[tuple[float, str], ...]
    count: int
    lowest: float
    highest: float


def heart_rate_chart(
    trend: HeartRateTrend, now: datetime, local: Callable[..., str]
) -> HeartRateChart | None:
    """The chart of the minutes with a rate, on a time axis from ``trend.since`` to ``now``;
    None when there is nothing to draw."""
    points = [p for p in trend.points if p.mean is not None and p.low is not None and p.high]
    if not points:
        return None
    width, height, left, right, top, bottom = 640, 260, 56, 620, 16, 220
    lowest = min(p.low for p in points if p.low is not None)
    highest = max(p.high for p in points if p.high is not None)
    low = min(lowest, BRADY_LINE) - 10
    high = max(highest, TACHY_LINE) + 10
    start, span = trend.since.timestamp(), max(now.timestamp() - trend.since.timestamp(), 60.0)

    def x_of(moment: datetime) -> float:
        fraction = min(max((moment.timestamp() + 30 - start) / span, 0.0), 1.0)
        return round(left + fraction * (right - left), 1)

    def y_of(bpm: float) -> float:
        return round(bottom - (bpm - low) / (high - low) * (bottom - top), 1)

    mean_line = " ".join(f"{x_of(p.minute)},{y_of(p.mean or 0.0)}" for p in points)
    upper = [f"{x_of(p.minute)},{y_of(p.high or 0.0)}" for p in points]
    lower = [f"{x_of(p.minute)},{y_of(p.low or 0.0)}" for p in reversed(points)]
    ticks = tuple((y_of(v), f"{v:g}") for v in range(int(low // 20 + 1) * 20, int(high), 20))
    labels = (
        (float(left), local(trend.since, "%d-%m %H:%M")),
        (float(right), local(now, "%d-%m %H:%M")),
    )
    return HeartRateChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        mean_line=mean_line,
        band=" ".join(upper + lower),
        limits=((y_of(BRADY_LINE), f"{BRADY_LINE:g}"), (y_of(TACHY_LINE), f"{TACHY_LINE:g}")),
        y_ticks=ticks,
        x_labels=labels,
        count=len(points),
        lowest=lowest,
        highest=highest,
    )
