"""The New Relic metric provider (`provider.newRelic`): NRQL through NerdGraph (GraphQL).

POST `{nerdgraph}` with `actor.account(id).nrql(query).results`; the value is the one
result row (a map, e.g. `result.successRate`) or the list of rows when there are several,
as in Argo; no rows -> no data. Credentials from the Secret `profile` (default `newrelic`)
with Argo's keys: ARGO_ROLLOUTS_NEWRELIC_APIKEY, ARGO_ROLLOUTS_NEWRELIC_ACCOUNT_ID, optional
ARGO_ROLLOUTS_NEWRELIC_REGION (us | eu) and ARGO_ROLLOUTS_NEWRELIC_BASE_URL_NERD_GRAPH (a
proxy). A GraphQL `errors` answer is a QueryError.
"""

from __future__ import annotations

import json
from datetime import datetime
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
    profile_value,
    raise_graphql_errors,
)
from rollouts.models.providers import NewRelicMetric

__all__ = ["NERDGRAPH_URLS", "NewRelicProvider"]

NERDGRAPH_URLS = {
    "us": "https://api.newrelic.com/graphql",
    "eu": "https://api.eu.newrelic.com/graphql",
}
_QUERY = (
    "query ($accountId: Int!, $nrql: Nrql!) "
    "{ actor { account(id: $accountId) { nrql(query: $nrql) { results } } } }"
)
_PREFIX = "ARGO_ROLLOUTS_NEWRELIC_"


class NewRelicProvider(VendorProvider):
    kind = "newRelic"

    def request(
        self, spec: NewRelicMetric, context: ProviderContext, now: datetime, secret: str
    ) -> HttpCall:
        key = profile_value(context, (_PREFIX + "APIKEY",), secret)
        account = profile_value(context, (_PREFIX + "ACCOUNT_ID",), secret)
        if not account.strip().isdigit():
            raise ProviderError(
                ErrorReason.CREDENTIALS,
                f"secret {secret!r} key {_PREFIX}ACCOUNT_ID is not a number",
            )
        region = profile_value(context, (_PREFIX + "REGION",), secret, default="us").lower()
        if region not in NERDGRAPH_URLS:
            raise ProviderError(
                ErrorReason.CREDENTIALS, f"secret {secret!r}: region must be us or eu"
            )
        url = profile_value(
            context, (_PREFIX + "BASE_URL_NERD_GRAPH",), secret, default=NERDGRAPH_URLS[region]
        )
        body = {"query": _QUERY, "variables": {"accountId": int(account), "nrql": spec.query}}
        return HttpCall(
            "POST",
            url,
            {"API-Key": key, "Content-Type": "application/json"},
            content=json.dumps(body).encode(),
            timeout=float(spec.timeout or DEFAULT_TIMEOUT_SECONDS),
        )

    def parse(self, body: Any, response: httpx.Response) -> Measurement:
        raise_graphql_errors(body)
        results = body["data"]["actor"]["account"]["nrql"]["results"]
        if not isinstance(results, list):
            raise ValueError("nrql results are not a list")
        return json_measurement(results[0] if len(results) == 1 else results)
