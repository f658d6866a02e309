"""format_time writes RFC 3339 in UTC with a Z, the fraction only when there is one
(models/wire.py), for any aware moment: checked against strftime's spelling of it."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from rollouts.models.wire import format_time, parse_time

OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)))
MOMENTS = st.datetimes(min_value=dt.datetime(1001, 1, 1), max_value=dt.datetime(9998, 12, 31),
                       timezones=OFFSETS)


def spelled(moment: dt.datetime) -> str:
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ")


@given(MOMENTS)
def test_format_time_is_rfc3339_utc_with_a_fraction_only_when_there_is_one(
        moment: dt.datetime) -> None:
    text = format_time(moment)
    assert text == spelled(moment)
    assert parse_time(text) == moment


@given(MOMENTS.map(lambda moment: moment.replace(microsecond=0)))
def test_whole_seconds_have_no_fraction(moment: dt.datetime) -> None:
    assert "." not in format_time(moment) and format_time(moment).endswith("Z")
