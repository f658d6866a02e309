"""The Graphite metric provider (`provider.graphite`): the render API.

GET `{address}/render?target=...&from=&until=&format=json` over the 5 minutes before
`now` (the injected clock, as epoch seconds). `query` is a target expression, or query
text starting with `target=` as in Argo's docs (line breaks and indentation removed). The
value is the list of the first series' non-null datapoints, in time order (Argo returns
floats); no series or only nulls -> no data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx

from rollouts.analysis.providers.base import (
    Measurement,
    ProviderContext,
    format_float,
    shorten,
)
from rollouts.analysis.providers.vendor import (
    DEFAULT_TIMEOUT_SECONDS,
    HttpCall,
    VendorProvider,
    as_number,
)
from rollouts.models.providers import GraphiteMetric

__all__ = ["WINDOW_SECONDS", "GraphiteProvider"]

WINDOW_SECONDS = 300


def _params(query: str, now: datetime) -> dict[str, str]:
    text = "".join(line.strip() for line in query.strip().splitlines())
    params = dict(parse_qsl(text, keep_blank_values=True)) if text.startswith("target=") else {
        "target": text
    }
    end = int(now.timestamp())
    params.setdefault("from", str(end - WINDOW_SECONDS))
    params.setdefault("until", str(end))
    params["format"] = "json"
    return params


class GraphiteProvider(VendorProvider):
    kind = "graphite"

    def request(
        self, spec: GraphiteMetric, context: ProviderContext, now: datetime, secret: str
    ) -> HttpCall:
        return HttpCall(
            "GET",
            spec.address.rstrip("/") + "/render",
            {"Accept": "application/json"},
            _params(spec.query, now),
            timeout=float(spec.timeout or DEFAULT_TIMEOUT_SECONDS),
        )

    def parse(self, body: Any, response: httpx.Response) -> Measurement:
        if not isinstance(body, list):
            raise ValueError("expected a list of series")
        if not body:
            return Measurement([], "[]", "vector")
        first = body[0]
        values = [as_number(point[0]) for point in first["datapoints"]]
        kept = [v for v in values if v is not None]
        raw = "[" + ",".join(format_float(v) for v in kept) + "]"
        return Measurement(kept, shorten(raw), "vector", ({"target": str(first["target"])},))
