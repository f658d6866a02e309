"""The graphite provider against a real graphite-web (Debian package) with stored series."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from rollouts.analysis.providers.base import (
    ErrorReason,
    Measurement,
    ProviderContext,
    ProviderError,
)
from rollouts.analysis.providers.graphite import GraphiteProvider
from rollouts.models.analysis import Metric
from tests.analysis.graphite_server import available, graphite, write_series


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, datetime]]:
    missing = available()
    if missing is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    root: pathlib.Path = tmp_path_factory.mktemp("graphite")
    # whisper keeps a day back from the wall clock, so the history ends at the clock's minute.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    end = int(now.timestamp())
    write_series(root, "app.web.ok", [(end - 60 * i, 90.0 + i) for i in range(1, 5)])
    write_series(root, "app.web.requests", [(end - 60 * i, 100.0) for i in range(1, 5)])
    with graphite(root) as url:
        yield url, now


def metric(url: str, query: str) -> Metric:
    return Metric.model_validate({"name": "m", "provider": {"graphite": {
        "address": url, "query": query}}})


async def test_real_graphite_series(server: tuple[str, datetime]) -> None:
    url, now = server
    async with GraphiteProvider() as provider:
        result = await provider.measure(metric(url, "app.web.ok"), ProviderContext(), now)
        ratio = await provider.measure(
            metric(url, "target=asPercent(\n  app.web.ok,\n  app.web.requests)"),
            ProviderContext(), now)
    assert isinstance(result, Measurement) and result.value == [94.0, 93.0, 92.0, 91.0]
    assert isinstance(ratio, Measurement) and ratio.value == [94.0, 93.0, 92.0, 91.0]


async def test_real_graphite_empty_and_error(server: tuple[str, datetime]) -> None:
    url, now = server
    async with GraphiteProvider() as provider:
        empty = await provider.measure(metric(url, "app.nothing.here"), ProviderContext(), now)
        broken = await provider.measure(
            metric(url, "noSuchFunction(app.web.ok)"), ProviderContext(), now
        )
    assert isinstance(empty, Measurement) and empty.no_data
    assert isinstance(broken, ProviderError)
    assert broken.reason in (ErrorReason.HTTP_STATUS, ErrorReason.QUERY_ERROR)
