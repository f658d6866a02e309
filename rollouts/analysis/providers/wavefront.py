"""The Wavefront metric provider (`provider.wavefront`): the chart API.

GET `https://{address}/api/v2/chart/api?q=&s=&e=&g=m&strict=true` over the 5 minutes
before `now` (epoch milliseconds, injected clock), with `Authorization: Bearer {token}`.
The value is the last point of the first series (Argo's), no series -> no data; the
answer's `warnings` go to metadata. `address` may be a host (https is assumed) or a URL;
unset, it comes from the Secret. Credentials from the Secret `profile` (default
`wavefront`): `ARGO_ROLLOUTS_WAVEFRONT_TOKEN` (or `token`) and optionally
`ARGO_ROLLOUTS_WAVEFRONT_ADDRESS` (or `address`), Argo's names.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import httpx

from rollouts.analysis.providers.base import Measurement, ProviderContext
from rollouts.analysis.providers.vendor import (
    DEFAULT_TIMEOUT_SECONDS,
    HttpCall,
    VendorProvider,
    as_number,
    number_measurement,
    profile_value,
)
from rollouts.models.providers import WavefrontMetric

__all__ = ["WINDOW_SECONDS", "WavefrontProvider"]

WINDOW_SECONDS = 300
_PREFIX = "ARGO_ROLLOUTS_WAVEFRONT_"


class WavefrontProvider(VendorProvider):
    kind = "wavefront"

    def request(
        self, spec: WavefrontMetric, context: ProviderContext, now: datetime, secret: str
    ) -> HttpCall:
        token = profile_value(context, (_PREFIX + "TOKEN", "token"), secret)
        address = spec.address or profile_value(
            context, (_PREFIX + "ADDRESS", "address"), secret
        )
        if not address.startswith(("http://", "https://")):
            address = "https://" + address
        end = int(now.timestamp() * 1000)
        params = {
            "q": spec.query,
            "s": str(end - WINDOW_SECONDS * 1000),
            "e": str(end),
            "g": "m",
            "strict": "true",
        }
        return HttpCall(
            "GET",
            address.rstrip("/") + "/api/v2/chart/api",
            {"Authorization": f"Bearer {token}", "Accept": "application/json"},
            params,
            timeout=float(spec.timeout or DEFAULT_TIMEOUT_SECONDS),
        )

    def parse(self, body: Any, response: httpx.Response) -> Measurement:
        series = body.get("timeseries") or []
        points = series[0]["data"] if series else []
        result = number_measurement(as_number(points[-1][1]) if points else None)
        warnings = body.get("warnings")
        if warnings:
            result = dataclasses.replace(result, metadata={"warnings": str(warnings)})
        return result
