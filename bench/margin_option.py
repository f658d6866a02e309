"""`--pass-margin R` and `--extra-looks N` of the judge benches (sequentialCounts' rule from
the last look on: its margin, and how many looks it may add).

R is relative (1.0: the data must rule out twice the baseline's error rate for the last look
to pass; `compare.passMargin.relative`), or `off`: OFF, a margin beyond the test's grid, so
that nothing is left to rule out and the rule never holds a pass back. Unset (None): the
product's default, whatever it is. N: `compare.extraMeasurements` (unset: the product's
default, five times `count`).
"""

from __future__ import annotations

import argparse

from rollouts.models.comparison import default_extra_measurements

OFF = 1000.0  # beyond the sequential test's grid of ratios: the rule is off


def parse_pass_margin(text: str) -> float:
    if text.strip().lower() == "off":
        return OFF
    try:
        margin = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'off': {text!r}") from None
    if not margin > 0 or margin == float("inf"):
        raise argparse.ArgumentTypeError(f"the pass margin must be above 0: {text!r}")
    return margin


def add_pass_margin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pass-margin",
        type=parse_pass_margin,
        default=None,
        metavar="R",
        help="sequentialCounts' passMargin (relative; 1.0 = 2x) or 'off'; default: the product's",
    )


def pass_margin_words(margin: float | None) -> str:
    """How a header says the margin: "" when unset (the product's default)."""
    if margin is None:
        return ""
    if margin >= OFF:
        return "pass margin off"
    return f"pass margin {margin:g} ({1 + margin:g}x)"


def pass_margin_kwargs(margin: float | None) -> dict[str, float]:
    """`sequential_counts`' keyword for the margin; none when unset (its own default)."""
    return {} if margin is None else {"pass_margin": margin}


def add_extra_looks_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--extra-looks",
        type=int,
        default=None,
        metavar="N",
        help="sequentialCounts' extraMeasurements; default: the product's (5 x count)",
    )


def extra_looks(extra: int | None, count: int, traffic: bool = True) -> int:
    """The looks the sequential metric may add after `count`: `extra`, or the product's
    default (`traffic`: both sides have minSamples; without, the short default)."""
    if extra is not None:
        return extra
    return default_extra_measurements("sequentialCounts", count, traffic=traffic)
