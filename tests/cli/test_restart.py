"""`rollouts restart`: when the restart starts, and what is written (pure parts)."""

from __future__ import annotations

import datetime as dt

import pytest

from rollouts.cli.kubeopts import CliError
from rollouts.cli.restart import restart_moment, restart_patch

NOW = dt.datetime(2026, 5, 1, 10, 0, 0, 700000, tzinfo=dt.UTC)


@pytest.mark.parametrize(("delay", "expected"), [
    (None, dt.datetime(2026, 5, 1, 10, 0, 0, tzinfo=dt.UTC)),  # whole seconds
    ("30s", dt.datetime(2026, 5, 1, 10, 0, 30, tzinfo=dt.UTC)),
    ("5m", dt.datetime(2026, 5, 1, 10, 5, 0, tzinfo=dt.UTC)),
    ("1h30m", dt.datetime(2026, 5, 1, 11, 30, 0, tzinfo=dt.UTC)),
])
def test_restart_moment(delay: str | None, expected: dt.datetime) -> None:
    assert restart_moment(NOW, delay) == expected


def test_a_bad_delay_is_an_error_naming_the_option() -> None:
    with pytest.raises(CliError, match="--in: invalid duration 'soon'"):
        restart_moment(NOW, "soon")


def test_the_patch_sets_only_restart_at_guarded_by_resource_version() -> None:
    assert restart_patch(dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC), "42") == {
        "metadata": {"resourceVersion": "42"}, "spec": {"restartAt": "2026-05-01T10:00:00Z"}}
