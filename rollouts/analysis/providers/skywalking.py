"""The Apache SkyWalking metric provider (`provider.skywalking`): GraphQL on the OAP server.

POST `{address}/graphql` with the query and `$duration` set to the window [now - interval,
now] (interval default 5m; SkyWalking's `yyyy-MM-dd HHmm` minute format, UTC). The value is
the answer's `data` object, so a condition reads it by the query's aliases (Argo's); a
GraphQL `errors` answer is a QueryError, `data: null` is no data.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from rollouts.analysis.providers.base import (
    ErrorReason,
    Measurement,
    ProviderContext,
    ProviderError,
)
from rollouts.analysis.providers.vendor import (
    DEFAULT_TIMEOUT_SECONDS,
    HttpCall,
    VendorProvider,
    json_measurement,
    raise_graphql_errors,
)
from rollouts.models.base import parse_duration
from rollouts.models.providers import SkyWalkingMetric

__all__ = ["SkyWalkingProvider", "duration_variable"]

DEFAULT_INTERVAL = "5m"


def duration_variable(now: datetime, seconds: int) -> dict[str, str]:
    moment = now.astimezone(UTC)
    start = moment - timedelta(seconds=seconds)
    return {
        "start": start.strftime("%Y-%m-%d %H%M"),
        "end": moment.strftime("%Y-%m-%d %H%M"),
        "step": "MINUTE",
    }


class SkyWalkingProvider(VendorProvider):
    kind = "skywalking"

    def request(
        self, spec: SkyWalkingMetric, context: ProviderContext, now: datetime, secret: str
    ) -> HttpCall:
        try:
            window = parse_duration(spec.interval or DEFAULT_INTERVAL)
        except ValueError as exc:
            raise ProviderError(ErrorReason.INVALID_SPEC, str(exc)) from None
        body = {"query": spec.query, "variables": {"duration": duration_variable(now, window)}}
        return HttpCall(
            "POST",
            spec.address.rstrip("/") + "/graphql",
            {"Content-Type": "application/json", "Accept": "application/json"},
            content=json.dumps(body).encode(),
            timeout=float(spec.timeout or DEFAULT_TIMEOUT_SECONDS),
        )

    def parse(self, body: Any, response: httpx.Response) -> Measurement:
        raise_graphql_errors(body)
        return json_measurement(body["data"])
