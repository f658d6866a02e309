"""Charts of a metric's measurements over time, as plain data for an SVG template (no I/O).

`metric_chart` places every measurement of one metric on a time axis, numeric values as
points joined by a line, the others (errors, no data) as marks on the baseline, and draws
the thresholds read from the metric's successCondition / failureCondition so a reader sees
each value against the line it had to stay on the right side of. Only simple comparisons
with a number (`result[0] <= 0.05`, `result > 0.9 && result < 1.1`) give a threshold line;
any other condition is shown as text only.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

from rollouts.models.analysis import Measurement

WIDTH, HEIGHT = 560, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28  # margins for the axis labels

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARISON = re.compile(
    rf"result(?:\[0\])?\s*(<=|>=|==|<|>)\s*({_NUMBER})|({_NUMBER})\s*(<=|>=|==|<|>)\s*result"
)
_FIRST_NUMBER = re.compile(_NUMBER)
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "=="}


@dataclass(frozen=True)
class Threshold:
    value: float
    operator: str  # as if written `result <op> value`
    kind: str  # "success" or "failure"
    y: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.kind}: result {self.operator} {format_value(self.value)}"


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    phase: str
    label: str  # what a screen reader and the tooltip say


@dataclass(frozen=True)
class Chart:
    title: str
    points: tuple[Point, ...]
    thresholds: tuple[Threshold, ...]
    y_ticks: tuple[tuple[float, str], ...]
    x_labels: tuple[tuple[float, str], ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom_y: float = HEIGHT - BOTTOM
    right_x: float = WIDTH - RIGHT

    @property
    def threshold_labels(self) -> tuple[tuple[float, str], ...]:
        """One label per threshold height (success and failure often share a value)."""
        grouped: dict[float, list[str]] = {}
        for threshold in self.thresholds:
            grouped.setdefault(threshold.y, []).append(threshold.label)
        return tuple((y, " · ".join(labels)) for y, labels in grouped.items())

    @property
    def line(self) -> str:
        """SVG polyline points joining the numeric measurements in time order."""
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points if p.phase != "no-value")

    @property
    def summary(self) -> str:
        values = [p.label for p in self.points]
        return f"{self.title}: {len(values)} measurement(s)" + (
            f", latest {values[-1]}" if values else "")


def thresholds_of(condition: str | None, kind: str) -> list[Threshold]:
    if not condition:
        return []
    found = []
    for match in _COMPARISON.finditer(condition):
        if match.group(1):
            found.append(Threshold(float(match.group(2)), match.group(1), kind))
        else:
            found.append(Threshold(float(match.group(3)), _FLIP[match.group(4)], kind))
    return found


def numeric(value: str | None) -> float | None:
    """The measurement's value as a number ("0.012", "[0.012]"); None if it has none."""
    if value is None:
        return None
    match = _FIRST_NUMBER.search(value)
    if match is None:
        return None
    number = float(match.group(0))
    return number if math.isfinite(number) else None


def format_value(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.001:
        return f"{value:.2e}"
    return f"{value:.4g}"


def _when(m: Measurement) -> dt.datetime | None:
    return m.finished_at or m.started_at


def metric_chart(title: str, measurements: list[Measurement], *, success: str | None,
                 failure: str | None) -> Chart:
    thresholds = thresholds_of(success, "success") + thresholds_of(failure, "failure")
    timed = [(when, m) for m in measurements if (when := _when(m)) is not None]
    timed.sort(key=lambda pair: pair[0])
    values = [v for _, m in timed if (v := numeric(m.value)) is not None]
    low = min([*values, *(t.value for t in thresholds)], default=0.0)
    high = max([*values, *(t.value for t in thresholds)], default=1.0)
    low = min(low, 0.0) if low >= 0 else low
    if high <= low:
        high = low + 1.0
    high += (high - low) * 0.1

    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    first = timed[0][0] if timed else None
    span = (timed[-1][0] - first).total_seconds() if timed and first else 0.0

    def x_of(when: dt.datetime) -> float:
        if first is None or span <= 0:
            return LEFT + plot_w / 2
        return LEFT + plot_w * (when - first).total_seconds() / span

    def y_of(value: float) -> float:
        return TOP + plot_h * (1 - (value - low) / (high - low))

    points = []
    for when, m in timed:
        value = numeric(m.value)
        stamp = when.strftime("%H:%M:%S")
        if value is None:
            points.append(Point(x_of(when), TOP + plot_h, "no-value",
                                f"{stamp} {m.phase}: {m.message or 'no value'}"))
        else:
            points.append(Point(x_of(when), y_of(value), m.phase,
                                f"{stamp} {format_value(value)} {m.phase}"))
    ticks = tuple((y_of(v), format_value(v)) for v in (low, (low + high) / 2, high))
    labels: tuple[tuple[float, str], ...] = ()
    if timed and first is not None:
        last = timed[-1][0]
        labels = ((float(LEFT), first.strftime("%H:%M:%S")),)
        if span > 0:
            labels += ((float(WIDTH - RIGHT), last.strftime("%H:%M:%S")),)
    placed = tuple(Threshold(t.value, t.operator, t.kind, y_of(t.value)) for t in thresholds)
    return Chart(title, tuple(points), placed, ticks, labels)
