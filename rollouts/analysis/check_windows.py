"""Fixed wall-clock windows for the consistency checks of the count test (pure).

The count e-value (`sequential`) may be updated at every look, however short: under Poisson
counts its anytime bound holds at any look frequency. Its two consistency checks
(`consistency`: the swing-robust e-value, the sign test over looks) do not assume Poisson
counts: they treat every unit they are fed as carrying its own swing of the canary's rate.
A swing lasts as long as it lasts (a flaky dependency for a minute), not as long as a look:
fed 15 s looks, a one-minute swing would count four times, as four independent "looks
beyond" for the sign test and four independent swings for the swing-robust e-value.

So the checks are fed **windows** of at least `CHECK_WINDOW_SECONDS` of wall clock, or of
`LOOKS_PER_WINDOW` looks if that comes first: the looks' counts are added up until the
window is that long, and the window is then folded into the checks as one unit. Looks of
a minute or more are each their own window (the checks behave exactly as they did with one
look a minute); a look of 15 s is a quarter of one. Looks of a few seconds (as in `rollouts
demo`) need scrapes as frequent, and windows of a minute of them would leave the sign tests
minutes to fill: there four looks make a window, and swings are assumed shorter. Between
closings, the swing-robust e-value judges the open window as if it closed now,
so a regression far beyond any swing (10x) still fails at the first short look; the sign
tests (and the early pass) wait for the window to close: re-judged at every short look, an
open window beyond the bound would get up to four chances a minute to count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["CHECK_WINDOW_SECONDS", "LOOKS_PER_WINDOW", "Window", "windows"]

# The time scale of the swings the checks allow for: the noisy canaries the checks' constants
# were set on (bench/judge_prometheus.py) swing once a minute. A shorter window lets a
# swing count several times; a longer one slows the sign test (it needs four windows).
CHECK_WINDOW_SECONDS: Final = 60.0
_CLOSING: Final = CHECK_WINDOW_SECONDS * (1.0 - 1e-9)  # 4 x 15 s closes despite rounding
LOOKS_PER_WINDOW: Final = 4


@dataclass(frozen=True, slots=True)
class Window:
    """The counts of the looks since the checks' last window closed, and how long they span."""

    canary_errors: float = 0.0
    canary_requests: float = 0.0
    baseline_errors: float = 0.0
    baseline_requests: float = 0.0
    seconds: float = 0.0
    looks: int = 0

    def add(
        self,
        canary_errors: float,
        canary_requests: float,
        baseline_errors: float,
        baseline_requests: float,
        seconds: float,
    ) -> Window:
        """This window with one more look (counts already cleaned by the caller; a look of
        no or non-finite length counts as a whole window: it cannot be placed in time)."""
        length = seconds if math.isfinite(seconds) and seconds > 0 else CHECK_WINDOW_SECONDS
        return Window(
            self.canary_errors + canary_errors,
            self.canary_requests + canary_requests,
            self.baseline_errors + baseline_errors,
            self.baseline_requests + baseline_requests,
            self.seconds + length,
            self.looks + 1,
        )

    @property
    def closed(self) -> bool:
        """Long enough to be folded into the checks as one unit."""
        return self.seconds >= _CLOSING or self.looks >= LOOKS_PER_WINDOW

    @property
    def empty(self) -> bool:
        return self.looks == 0

    @property
    def counts(self) -> tuple[float, float, float, float]:
        """(canary errors, canary requests, baseline errors, baseline requests)."""
        return (
            self.canary_errors,
            self.canary_requests,
            self.baseline_errors,
            self.baseline_requests,
        )


def windows(
    looks: Iterable[tuple[float, float, float, float, float]],
) -> tuple[list[Window], Window]:
    """The closed windows of a run's looks (each: canary errors, canary requests, baseline
    errors, baseline requests, seconds), and the window still open after the last look.
    A window closes at a minute, or at `LOOKS_PER_WINDOW` looks.

    >>> closed, open_window = windows([(1, 100, 2, 400, 15.0)] * 5)
    >>> [w.counts for w in closed], open_window.counts
    ([(4.0, 400.0, 8.0, 1600.0)], (1.0, 100.0, 2.0, 400.0))
    """
    closed: list[Window] = []
    current = Window()
    for look in looks:
        current = current.add(*(float(v) for v in look))
        if current.closed:
            closed.append(current)
            current = Window()
    return closed, current
