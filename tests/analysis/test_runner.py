"""reconcile_analysis_run against the API emulator, with fake and MockTransport providers."""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from rollouts.analysis.providers.base import (
    ErrorReason,
    Measurement,
    ProviderContext,
    ProviderError,
)
from rollouts.analysis.providers.job import MeasurementContext, Pending, ProviderOutcome
from rollouts.analysis.providers.prometheus import RESOLVED_QUERY_KEY, PrometheusProvider
from rollouts.analysis.runner import (
    MASK,
    ProviderConfig,
    ProviderSet,
    merge_patch_for,
    reconcile_analysis_run,
)
from rollouts.kube.client import KubeClient
from rollouts.kube.config import Connection
from rollouts.models.analysis import Metric
from rollouts.sandbox.apiserver import ApiEmulator

CRDS = pathlib.Path(__file__).resolve().parents[2] / "crds"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NS = "default"
G, V, P = "rollouts.dev", "v1alpha1", "analysisruns"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
async def emu() -> AsyncIterator[ApiEmulator]:
    async with ApiEmulator() as emulator:
        for crd in sorted(CRDS.glob("rollouts.dev_*.yaml")):
            emulator.apply_yaml(crd)
        yield emulator


@pytest.fixture
async def client(emu: ApiEmulator) -> AsyncIterator[KubeClient]:
    async with KubeClient(Connection(host=emu.url)) as kube:
        yield kube


Script = Callable[[Metric, ProviderContext, datetime], Any]


class FakeProvider:
    """Answers from a script; records every call."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.calls: list[tuple[Metric, ProviderContext, datetime]] = []
        self.closed = False

    async def measure(
        self, metric: Metric, context: ProviderContext, now: datetime
    ) -> ProviderOutcome:
        self.calls.append((metric, context, now))
        answer = self.script(metric, context, now)
        if asyncio.iscoroutine(answer):
            answer = await answer
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        self.closed = True


def value(v: object, raw: str | None = None, **metadata: str) -> Measurement:
    return Measurement(v, raw if raw is not None else json.dumps(v), "vector", metadata=metadata)


def providers(fake: FakeProvider, timeout: float = 5.0) -> ProviderSet:
    return ProviderSet(prometheus=fake, web=fake, job=fake, measurement_timeout=timeout)


def prom_metric(name: str = "rate", query: str = "q", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "successCondition": "result[0] >= 0.95",
        "provider": {"prometheus": {"address": "http://prom.test:9090", "query": query}},
        **fields,
    }


def create_run(emu: ApiEmulator, *metrics: dict[str, Any], name: str = "run", **spec: Any) -> None:
    emu.create_object(
        G,
        V,
        P,
        NS,
        {
            "apiVersion": f"{G}/{V}",
            "kind": "AnalysisRun",
            "metadata": {"name": name},
            "spec": {"metrics": list(metrics) or [prom_metric()], **spec},
        },
    )


async def reconcile(
    client: KubeClient, set_: ProviderSet, now: datetime, name: str = "run"
) -> tuple[float | None, dict[str, Any]]:
    body = await client.get(G, V, P, NS, name)
    requeue = await reconcile_analysis_run(client, body, set_, now)
    return requeue, await client.get(G, V, P, NS, name)


def status_writes(emu: ApiEmulator) -> int:
    return emu.requests[("patch", "analysisruns/status")]


# --- the pass --------------------------------------------------------------------------------


async def test_measures_writes_status_and_requeues(emu: ApiEmulator, client: KubeClient) -> None:
    create_run(emu, prom_metric(interval="10s", count=2))
    fake = FakeProvider(lambda *_: value([0.99], "[0.99]"))
    set_ = providers(fake)

    requeue, body = await reconcile(client, set_, T0)
    assert requeue == 10.0
    status = body["status"]
    assert status["phase"] == "Running"
    assert status["startedAt"] == "2026-01-01T12:00:00Z"
    [result] = status["metricResults"]
    assert result["measurements"][0]["phase"] == "Successful"
    assert result["measurements"][0]["value"] == "[0.99]"
    assert result["measurements"][0]["startedAt"] == "2026-01-01T12:00:00Z"

    # The provider saw the run and the slot.
    _, context, now = fake.calls[0]
    assert isinstance(context, MeasurementContext)
    assert context.run is not None and context.run.name == "run" and context.run.uid
    assert context.slot == T0 and context.index == 1 and now == T0

    # Same time again: nothing measured, nothing written (invariant 6).
    writes = status_writes(emu)
    requeue, _ = await reconcile(client, set_, at(1))
    assert requeue == 9.0
    assert len(fake.calls) == 1 and status_writes(emu) == writes

    requeue, body = await reconcile(client, set_, at(10))
    assert requeue is None
    assert body["status"]["phase"] == "Successful"
    assert body["status"]["runSummary"] == {
        "count": 1,
        "successful": 1,
        "failed": 0,
        "inconclusive": 0,
        "error": 0,
    }
    assert len(fake.calls) == 2
    # A completed run is left alone.
    writes = status_writes(emu)
    assert await reconcile_analysis_run(client, body, set_, at(100)) is None
    assert status_writes(emu) == writes and len(fake.calls) == 2


async def test_failure_message_names_metric_value_and_condition(
    emu: ApiEmulator, client: KubeClient
) -> None:
    create_run(emu)
    set_ = providers(FakeProvider(lambda *_: value([0.5], "[0.5]")))
    requeue, body = await reconcile(client, set_, T0)
    assert requeue is None
    assert body["status"]["phase"] == "Failed"
    message = body["status"]["message"]
    assert '"rate"' in message and "[0.5]" in message and "result[0] >= 0.95" in message


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (RuntimeError("boom"), "provider raised RuntimeError: boom"),
        (
            ProviderError(ErrorReason.CONNECTION, "cannot connect"),
            "ConnectionError: cannot connect",
        ),
        (value([], "[]"), None),
    ],
)
async def test_provider_failures_are_never_success(
    emu: ApiEmulator, client: KubeClient, answer: Any, expected: str | None
) -> None:
    create_run(emu, prom_metric(interval="1m", consecutiveErrorLimit=0))
    set_ = providers(FakeProvider(lambda *_: answer))
    _, body = await reconcile(client, set_, T0)
    status = body["status"]
    assert status["phase"] != "Successful"
    measurement = status["metricResults"][0]["measurements"][0]
    assert measurement["phase"] in ("Error", "Inconclusive")
    if expected is not None:
        assert measurement["phase"] == "Error"
        assert measurement["message"] == expected
        assert status["phase"] == "Error"
        assert expected in status["message"]
    else:
        assert "no data" in measurement["message"]


async def test_a_hanging_provider_times_out_as_an_error(
    emu: ApiEmulator, client: KubeClient
) -> None:
    create_run(emu, prom_metric(interval="1m"))

    async def hang() -> Measurement:
        await asyncio.sleep(30)
        return value([1.0])

    set_ = providers(FakeProvider(lambda *_: hang()), timeout=0.05)
    requeue, body = await reconcile(client, set_, T0)
    measurement = body["status"]["metricResults"][0]["measurements"][0]
    assert measurement["phase"] == "Error"
    assert measurement["message"].startswith("Timeout: no answer within 0.05s")
    assert requeue == 10.0  # an error is retried after min(interval, 10s)


async def test_stale_body_is_not_written_and_asks_for_a_fresh_read(
    emu: ApiEmulator, client: KubeClient
) -> None:
    create_run(emu, prom_metric(interval="1m"))
    fake = FakeProvider(lambda *_: value([0.99]))
    set_ = providers(fake)
    stale = await client.get(G, V, P, NS, "run")
    emu.patch_object(
        G, V, P, NS, "run", {"status": {"phase": "Running", "message": "other"}}, "status"
    )
    assert await reconcile_analysis_run(client, stale, set_, T0) == 0.0
    assert (await client.get(G, V, P, NS, "run"))["status"]["message"] == "other"
    # The fresh read measures the same slot again: nothing is lost.
    _, body = await reconcile(client, set_, at(1))
    assert (
        body["status"]["metricResults"][0]["measurements"][0]["startedAt"] == "2026-01-01T12:00:01Z"
    )
    assert "message" not in body["status"]  # the merge patch removed the stale key


async def test_a_metadata_only_change_keeps_the_measurement_taken(
    emu: ApiEmulator, client: KubeClient
) -> None:
    """kopf adds its finalizer to a new run while the first measurement is taken: the
    measurement is written on the fresh resourceVersion, not taken a second time."""
    create_run(emu, prom_metric(interval="1m"))
    fake = FakeProvider(lambda *_: value([0.99]))
    set_ = providers(fake)
    body = await client.get(G, V, P, NS, "run")
    emu.patch_object(G, V, P, NS, "run", {"metadata": {"finalizers": ["rollouts.dev/finalizer"]}})
    assert await reconcile_analysis_run(client, body, set_, T0) == 60.0
    run = await client.get(G, V, P, NS, "run")
    assert [m["startedAt"] for m in run["status"]["metricResults"][0]["measurements"]] == [
        "2026-01-01T12:00:00Z"]
    assert len(fake.calls) == 1
    assert run["metadata"]["finalizers"] == ["rollouts.dev/finalizer"]


async def test_invalid_run_gets_phase_error_naming_the_field(
    emu: ApiEmulator, client: KubeClient
) -> None:
    # The CRD admits this run (the pattern holds); only the controller's bound refuses it. A
    # run the CRD's schema refuses (an unknown provider...) never reaches the controller.
    create_run(emu, prom_metric(interval="99999h"))
    set_ = providers(FakeProvider(lambda *_: value([1.0])))
    requeue, body = await reconcile(client, set_, T0)
    assert requeue is None
    assert body["status"]["phase"] == "Error"
    assert "spec.metrics[0].interval" in body["status"]["message"]
    assert "87600h" in body["status"]["message"]
    writes = status_writes(emu)
    await reconcile(client, set_, at(5))
    assert status_writes(emu) == writes


async def test_terminate_finishes_the_run(emu: ApiEmulator, client: KubeClient) -> None:
    create_run(emu, prom_metric(interval="1m"))
    fake = FakeProvider(lambda *_: value([0.99]))
    await reconcile(client, providers(fake), T0)
    emu.patch_object(G, V, P, NS, "run", {"spec": {"terminate": True}})
    requeue, body = await reconcile(client, providers(fake), at(60))
    assert requeue is None
    assert body["status"]["phase"] == "Successful"
    assert body["status"]["message"] == "run terminated"
    assert len(fake.calls) == 1


async def test_pending_outcome_records_a_running_measurement(
    emu: ApiEmulator, client: KubeClient
) -> None:
    create_run(emu, prom_metric())
    answers: list[ProviderOutcome] = [
        Pending("started", {"job-name": "j"}, poll_after=3),
        value([0.99]),
    ]
    fake = FakeProvider(lambda *_: answers.pop(0))
    requeue, body = await reconcile(client, providers(fake), T0)
    assert requeue == 3.0
    [m] = body["status"]["metricResults"][0]["measurements"]
    assert m["phase"] == "Running" and m["resumeAt"] == "2026-01-01T12:00:03Z"
    assert body["status"]["phase"] == "Running"
    requeue, body = await reconcile(client, providers(fake), at(3))
    assert requeue is None
    [m] = body["status"]["metricResults"][0]["measurements"]
    assert m["phase"] == "Successful" and m["startedAt"] == "2026-01-01T12:00:00Z"
    _, context, _ = fake.calls[1]
    assert isinstance(context, MeasurementContext) and context.slot == T0 and context.index == 1


# --- secrets ---------------------------------------------------------------------------------


def create_secret(emu: ApiEmulator, name: str, **data: str) -> None:
    emu.create_object(
        "",
        "v1",
        "secrets",
        NS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        },
    )


SECRET_ARG = {"name": "token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}


async def test_secret_args_are_resolved_per_measurement_and_never_stored(
    emu: ApiEmulator, client: KubeClient
) -> None:
    create_secret(emu, "creds", token="s3cr3t-t0ken")
    create_run(
        emu,
        prom_metric(query='up{token="{{args.token}}", svc="{{ args.svc }}"}'),
        args=[SECRET_ARG, {"name": "svc", "value": "web"}],
    )

    def echo(metric: Metric, _c: ProviderContext, _n: datetime) -> Measurement:
        assert metric.provider.prometheus is not None
        query = metric.provider.prometheus.query
        return value([0.99], f"[0.99] for {query}", **{RESOLVED_QUERY_KEY: query})

    fake = FakeProvider(echo)
    _, body = await reconcile(client, providers(fake), T0)
    metric, _, _ = fake.calls[0]
    assert metric.provider.prometheus is not None
    assert metric.provider.prometheus.query == 'up{token="s3cr3t-t0ken", svc="web"}'
    text = json.dumps(body)
    assert "s3cr3t-t0ken" not in text
    measurement = body["status"]["metricResults"][0]["measurements"][0]
    assert measurement["metadata"][RESOLVED_QUERY_KEY] == f'up{{token="{MASK}", svc="web"}}'
    assert MASK in measurement["value"]
    assert body["spec"]["args"][0] == SECRET_ARG


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "secret 'creds' not found"),
        ({"other": "x"}, "secret 'creds' has no key 'token'"),
    ],
)
async def test_unreadable_secret_is_an_error_measurement(
    emu: ApiEmulator, client: KubeClient, secret: dict[str, str] | None, message: str
) -> None:
    if secret is not None:
        create_secret(emu, "creds", **secret)
    create_run(emu, prom_metric(query="{{args.token}}", interval="1m"), args=[SECRET_ARG])
    fake = FakeProvider(lambda *_: value([0.99]))
    _, body = await reconcile(client, providers(fake), T0)
    measurement = body["status"]["metricResults"][0]["measurements"][0]
    assert measurement["phase"] == "Error"
    assert message in measurement["message"]
    assert fake.calls == []


async def test_unresolved_arg_is_an_error_measurement(emu: ApiEmulator, client: KubeClient) -> None:
    create_run(emu, prom_metric(query="{{args.nobody}}", interval="1m"))
    fake = FakeProvider(lambda *_: value([0.99]))
    _, body = await reconcile(client, providers(fake), T0)
    measurement = body["status"]["metricResults"][0]["measurements"][0]
    assert measurement["phase"] == "Error"
    assert "unresolved argument(s) {{args.nobody}}" in measurement["message"]


# --- the real Prometheus provider over httpx.MockTransport -------------------------------------


def prometheus_answer(
    result: list[Any], status: int = 200
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if status != 200:
            return httpx.Response(status, text="overloaded")
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    return handler


def sample(v: str) -> dict[str, Any]:
    return {"metric": {"app": "web"}, "value": [1767268800, v]}


@pytest.mark.parametrize(
    ("handler", "phase", "run_phase"),
    [
        (prometheus_answer([sample("0.99")]), "Successful", "Successful"),
        (prometheus_answer([sample("0.5")]), "Failed", "Failed"),
        (prometheus_answer([]), "Error", "Running"),  # result[0] of nothing: no data
        (prometheus_answer([sample("NaN")]), "Error", "Running"),
        (prometheus_answer([], status=503), "Error", "Running"),
    ],
)
async def test_with_prometheus_over_mock_transport(
    emu: ApiEmulator,
    client: KubeClient,
    handler: Callable[[httpx.Request], httpx.Response],
    phase: str,
    run_phase: str,
) -> None:
    create_run(emu)
    set_ = ProviderSet.from_config(ProviderConfig(transport=httpx.MockTransport(handler)), client)
    try:
        _, body = await reconcile(client, set_, T0)
    finally:
        await set_.aclose()
    measurement = body["status"]["metricResults"][0]["measurements"][0]
    assert measurement["phase"] == phase
    assert body["status"]["phase"] == run_phase


async def test_prometheus_credentials_come_from_the_secret(
    emu: ApiEmulator, client: KubeClient
) -> None:
    create_secret(emu, "prom-auth", user="reader", password="pa55word")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        return prometheus_answer([sample("1")])(request)

    metric = prom_metric()
    metric["provider"]["prometheus"]["authentication"] = {
        "basic": {
            "secretRef": {"name": "prom-auth", "usernameKey": "user", "passwordKey": "password"}
        }
    }
    create_run(emu, metric)
    prom = PrometheusProvider(transport=httpx.MockTransport(handler))
    set_ = ProviderSet(prometheus=prom, web=prom, job=prom)
    try:
        _, body = await reconcile(client, set_, T0)
    finally:
        await set_.aclose()
    assert seen == ["Basic " + base64.b64encode(b"reader:pa55word").decode()]
    assert body["status"]["phase"] == "Successful"
    assert "pa55word" not in json.dumps(body)


async def test_provider_set_closes_every_provider() -> None:
    fakes = [FakeProvider(lambda *_: value([1])) for _ in range(3)]
    set_ = ProviderSet(prometheus=fakes[0], web=fakes[1], job=fakes[2])
    await set_.aclose()
    assert all(f.closed for f in fakes)


def test_merge_patch_nulls_removed_keys() -> None:
    old = {"phase": "Running", "message": "x", "runSummary": {"count": 1, "extra": 2}}
    new = {"phase": "Failed", "runSummary": {"count": 2}}
    assert merge_patch_for(old, new) == {
        "phase": "Failed",
        "message": None,
        "runSummary": {"count": 2, "extra": None},
    }


TRICKY = 'p"a\\ss\'w/o rd+=ü'
TRICKY_ASCII = 'p"a\\ss\'w/o rd+='


async def test_a_secret_with_quotes_and_backslashes_is_masked_in_every_encoding(
    emu: ApiEmulator, client: KubeClient
) -> None:
    """A web value (JSON), a condition error (repr) and metadata (URL) all quote it."""
    create_secret(emu, "creds", token=TRICKY)
    create_run(
        emu,
        {
            "name": "rate",
            "successCondition": "result.ok == true",
            "provider": {"web": {"url": "http://svc/?t={{args.token}}"}},
        },
        args=[SECRET_ARG],
    )
    from urllib.parse import quote

    def echo(metric: Metric, _c: ProviderContext, _n: datetime) -> Measurement:
        assert metric.provider.web is not None
        url = metric.provider.web.url
        document = {"token": url.split("t=", 1)[1], "ok": "yes"}
        return Measurement(
            document, json.dumps(document), "json",
            metadata={"url": "http://svc/?t=" + quote(TRICKY, safe=""),
                      "repr": repr(document), "b64": base64.b64encode(TRICKY.encode()).decode()},
        )

    _, body = await reconcile(client, providers(FakeProvider(echo)), T0)
    text = json.dumps(body)
    measurement = body["status"]["metricResults"][0]["measurements"][0]
    assert MASK in measurement["value"] and all(MASK in v for v in measurement["metadata"].values())
    from rollouts.analysis.masking import encodings

    for form in encodings(TRICKY):
        assert form not in text, form
    assert json.dumps(TRICKY)[1:-1] not in text and repr(TRICKY)[1:-1] not in text


async def test_vendor_credentials_come_from_the_profile_secret_and_are_masked(
    emu: ApiEmulator, client: KubeClient
) -> None:
    """A datadog metric reads Secret `datadog` (Argo's default name) in the run's namespace
    against a real local server; the key echoed back in an error is masked in the status."""
    from aiohttp import web

    from rollouts.analysis.providers.datadog import DatadogProvider
    from tests.analysis.local_http import serve

    async def query(request: web.Request) -> web.StreamResponse:
        key = request.headers.get("DD-API-KEY", "")
        error = {"status": "error", "error": f"key {key!r} is revoked"}
        return web.json_response(error, status=403)

    async with serve({("GET", "/api/v1/query"): query}) as server:
        create_secret(emu, "datadog", **{"address": server.url, "api-key": TRICKY_ASCII,
                                         "app-key": "app-k3y-value"})
        create_run(emu, {"name": "dd", "provider": {"datadog": {"query": "sum:x"}}})
        fake = FakeProvider(lambda *_: value([1.0]))
        set_ = providers(fake)
        set_.others["datadog"] = DatadogProvider()
        _, body = await reconcile(client, set_, T0)
        await set_.others["datadog"].aclose()
    assert server.requests[0].headers["DD-APPLICATION-KEY"] == "app-k3y-value"
    measurement = body["status"]["metricResults"][0]["measurements"][0]
    assert measurement["phase"] == "Error" and "revoked" in measurement["message"]
    assert MASK in measurement["message"]
    text = json.dumps(body)
    from rollouts.analysis.masking import encodings

    for form in encodings(TRICKY_ASCII) | encodings("app-k3y-value"):
        assert form not in text


async def test_a_missing_profile_secret_is_an_error_measurement(
    emu: ApiEmulator, client: KubeClient
) -> None:
    create_run(emu, {"name": "nr", "provider": {"newRelic": {"query": "SELECT 1",
                                                             "profile": "nr-prod"}}})
    _, body = await reconcile(client, providers(FakeProvider(lambda *_: value([1.0]))), T0)
    measurement = body["status"]["metricResults"][0]["measurements"][0]
    assert measurement["phase"] == "Error" and "secret 'nr-prod' not found" in measurement[
        "message"]
