"""The InfluxDB metric provider (`provider.influxdb`): Flux through the v2 query API.

POST `{address}/api/v2/query?org=` with the Flux text (`application/vnd.flux`), answered as
annotated CSV. The value is the list of every `_value` in the answer, in order, numbers as
floats (Argo returns an array, like Prometheus); no rows -> no data. Credentials from the
Secret `profile` (default `influxdb`), Argo's keys: `address`, `authToken`, `org`. An error
answer (`{"code": ..., "message": ...}`) is a QueryError.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

import httpx

from rollouts.analysis.providers.base import (
    Measurement,
    ProviderContext,
    json_text,
    shorten,
)
from rollouts.analysis.providers.vendor import (
    DEFAULT_TIMEOUT_SECONDS,
    HttpCall,
    VendorProvider,
    profile_value,
)
from rollouts.models.providers import InfluxdbMetric

__all__ = ["InfluxdbProvider", "parse_annotated_csv"]


def _cell(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text


def parse_annotated_csv(text: str) -> list[object]:
    """Every `_value` cell of an annotated CSV answer (several tables, each with its own
    header after its `#` annotations)."""
    values: list[object] = []
    header: list[str] | None = None
    for row in csv.reader(io.StringIO(text)):
        if not row or all(not cell for cell in row):
            header = None
            continue
        if row[0].startswith("#"):
            header = None
            continue
        if header is None:
            header = row
            continue
        if "_value" in header:
            values.append(_cell(row[header.index("_value")]))
    return values


class InfluxdbProvider(VendorProvider):
    kind = "influxdb"

    def request(
        self, spec: InfluxdbMetric, context: ProviderContext, now: datetime, secret: str
    ) -> HttpCall:
        address = profile_value(context, ("address",), secret)
        token = profile_value(context, ("authToken",), secret)
        org = profile_value(context, ("org",), secret)
        return HttpCall(
            "POST",
            address.rstrip("/") + "/api/v2/query",
            {
                "Authorization": f"Token {token}",
                "Content-Type": "application/vnd.flux",
                "Accept": "application/csv",
            },
            {"org": org},
            content=spec.query.encode(),
            timeout=float(spec.timeout or DEFAULT_TIMEOUT_SECONDS),
        )

    def decode(self, response: httpx.Response) -> Any:
        if "json" in response.headers.get("content-type", ""):
            return json.loads(response.content)
        return response.text

    def parse(self, body: Any, response: httpx.Response) -> Measurement:
        if not isinstance(body, str):
            raise ValueError("expected annotated CSV")
        values = parse_annotated_csv(body)
        return Measurement(values, shorten(json_text(values)), "vector")
