"""The Job provider against the API emulator (Job status set by hand, as a Job controller would)."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollouts.analysis.providers.base import (
    ErrorReason,
    Measurement,
    ProviderContext,
    ProviderError,
)
from rollouts.analysis.providers.job import (
    RUN_NAME_ANNOTATION,
    RUN_UID_LABEL,
    Decided,
    JobProvider,
    MeasurementContext,
    Pending,
    RunRef,
    job_name,
    job_outcome,
)
from rollouts.analysis.runner import ProviderSet, reconcile_analysis_run
from rollouts.kube.client import KubeClient
from rollouts.kube.config import Connection
from rollouts.models.analysis import Metric
from rollouts.sandbox.apiserver import ApiEmulator

CRDS = pathlib.Path(__file__).resolve().parents[2] / "crds"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NS = "default"
G, V, P = "rollouts.dev", "v1alpha1", "analysisruns"

JOB_SPEC: dict[str, Any] = {
    "backoffLimit": 0,
    "template": {
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "smoke", "image": "busybox", "command": ["true"]}],
        }
    },
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job_metric(name: str = "smoke", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": {"job": {"metadata": {"labels": {"team": "qa"}}, "spec": JOB_SPEC}},
        **fields,
    }


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


RUN = RunRef("web-abc-step-1", NS, "run-uid-1")


def context(index: int = 1, run: RunRef = RUN) -> MeasurementContext:
    return MeasurementContext(run=run, slot=T0, index=index)


def set_job_condition(emu: ApiEmulator, name: str, kind: str, **extra: Any) -> None:
    condition = {"type": kind, "status": "True", **extra}
    status: dict[str, Any] = {"conditions": [condition]}
    status["succeeded" if kind == "Complete" else "failed"] = 1
    emu.patch_object("batch", "v1", "jobs", NS, name, {"status": status}, "status")


def jobs(emu: ApiEmulator) -> list[dict[str, Any]]:
    return emu.list_objects("batch", "v1", "jobs", NS)


# --- the provider on its own -------------------------------------------------------------------


async def test_creates_an_owned_job_then_follows_it(emu: ApiEmulator, client: KubeClient) -> None:
    provider = JobProvider(client, poll_interval=7)
    metric = Metric.model_validate(job_metric())

    first = await provider.measure(metric, context(), T0)
    assert isinstance(first, Pending)
    assert first.poll_after == 7
    name = job_name(RUN.name, "smoke", 1)
    assert name == "web-abc-step-1-smoke-1"
    [job] = jobs(emu)
    meta = job["metadata"]
    assert meta["name"] == name
    assert meta["labels"] == {"team": "qa", RUN_UID_LABEL: "run-uid-1"}
    assert meta["annotations"][RUN_NAME_ANNOTATION] == RUN.name
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "rollouts.dev/v1alpha1",
            "kind": "AnalysisRun",
            "name": RUN.name,
            "uid": "run-uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"

    emu.patch_object("batch", "v1", "jobs", NS, name, {"status": {"active": 1}}, "status")
    running = await provider.measure(metric, context(), at(7))
    assert isinstance(running, Pending)
    assert "active 1" in running.message and running.poll_after == 7

    set_job_condition(emu, name, "Complete")
    done = await provider.measure(metric, context(), at(14))
    assert done == Decided("Successful", "Complete", f"job {name} completed", {"job-name": name})
    assert emu.requests[("create", "jobs")] == 1


async def test_failed_job_is_a_failed_measurement(emu: ApiEmulator, client: KubeClient) -> None:
    provider = JobProvider(client)
    metric = Metric.model_validate(job_metric())
    await provider.measure(metric, context(), T0)
    name = job_name(RUN.name, "smoke", 1)
    set_job_condition(
        emu, name, "Failed", reason="BackoffLimitExceeded", message="Job has reached the limit"
    )
    outcome = await provider.measure(metric, context(), at(10))
    assert isinstance(outcome, Decided)
    assert outcome.phase == "Failed"
    assert outcome.message == f"job {name} failed: BackoffLimitExceeded: Job has reached the limit"


async def test_an_existing_job_is_reused_after_a_restart(
    emu: ApiEmulator, client: KubeClient
) -> None:
    metric = Metric.model_validate(job_metric())
    await JobProvider(client).measure(metric, context(), T0)
    # A new controller (new provider instance) with the same recorded ordinal.
    outcome = await JobProvider(client).measure(metric, context(), at(1))
    assert isinstance(outcome, Pending)
    assert len(jobs(emu)) == 1
    # The next measurement gets its own Job.
    await JobProvider(client).measure(metric, context(index=2), at(60))
    assert sorted(j["metadata"]["name"] for j in jobs(emu)) == [
        "web-abc-step-1-smoke-1",
        "web-abc-step-1-smoke-2",
    ]


async def test_a_foreign_job_with_the_name_is_refused(emu: ApiEmulator, client: KubeClient) -> None:
    name = job_name(RUN.name, "smoke", 1)
    emu.create_object("batch", "v1", "jobs", NS, {"metadata": {"name": name}, "spec": JOB_SPEC})
    outcome = await JobProvider(client).measure(Metric.model_validate(job_metric()), context(), T0)
    assert isinstance(outcome, ProviderError)
    assert "not controlled by AnalysisRun" in outcome.message


async def test_job_spec_rejected_by_the_server_is_an_error(client: KubeClient) -> None:
    run = RunRef("r", "no-such-namespace", "uid")
    outcome = await JobProvider(client).measure(
        Metric.model_validate(job_metric()), context(run=run), T0
    )
    assert isinstance(outcome, ProviderError)


async def test_needs_the_run_context(client: KubeClient) -> None:
    outcome = await JobProvider(client).measure(
        Metric.model_validate(job_metric()), ProviderContext(), T0
    )
    assert isinstance(outcome, ProviderError) and outcome.reason == ErrorReason.INVALID_SPEC


def test_job_names_are_short_dns_labels() -> None:
    name = job_name("r" * 60, "Metric_With.Odd CHARS", 123)
    assert len(name) <= 63 and name.endswith("-123") and name == name.lower()
    assert job_name("r" * 60, "a", 1) != job_name("r" * 60, "b", 1)


def test_job_outcome_ignores_false_conditions() -> None:
    job = {
        "metadata": {"name": "j"},
        "status": {"conditions": [{"type": "Failed", "status": "False"}], "active": 1},
    }
    assert isinstance(job_outcome(job), Pending)


# --- through the runner --------------------------------------------------------------------


def create_run(emu: ApiEmulator, *metrics: dict[str, Any]) -> dict[str, Any]:
    return emu.create_object(
        G,
        V,
        P,
        NS,
        {
            "apiVersion": f"{G}/{V}",
            "kind": "AnalysisRun",
            "metadata": {"name": "run"},
            "spec": {"metrics": list(metrics)},
        },
    )


async def reconcile(
    client: KubeClient, providers: ProviderSet, now: datetime
) -> tuple[float | None, dict[str, Any]]:
    body = await client.get(G, V, P, NS, "run")
    requeue = await reconcile_analysis_run(client, body, providers, now)
    return requeue, await client.get(G, V, P, NS, "run")


async def test_runner_with_jobs(emu: ApiEmulator, client: KubeClient) -> None:
    run = create_run(emu, job_metric(interval="1m", count=2))
    job = JobProvider(client, poll_interval=5)
    providers = ProviderSet(prometheus=job, web=job, job=job, poll_interval=5)

    requeue, body = await reconcile(client, providers, T0)
    assert requeue == 5.0
    [m] = body["status"]["metricResults"][0]["measurements"]
    assert m["phase"] == "Running" and m["metadata"] == {"job-name": "run-smoke-1"}
    [created] = jobs(emu)
    assert created["metadata"]["ownerReferences"][0]["uid"] == run["metadata"]["uid"]

    # Still running at the poll: same measurement, new resumeAt, no second Job.
    requeue, body = await reconcile(client, providers, at(5))
    assert requeue == 5.0
    assert len(body["status"]["metricResults"][0]["measurements"]) == 1
    assert len(jobs(emu)) == 1

    set_job_condition(emu, "run-smoke-1", "Complete")
    requeue, body = await reconcile(client, providers, at(10))
    result = body["status"]["metricResults"][0]
    assert [m["phase"] for m in result["measurements"]] == ["Successful"]
    assert result["measurements"][0]["startedAt"] == "2026-01-01T12:00:00Z"
    assert requeue == 50.0

    requeue, body = await reconcile(client, providers, at(60))
    assert {j["metadata"]["name"] for j in jobs(emu)} == {"run-smoke-1", "run-smoke-2"}
    set_job_condition(emu, "run-smoke-2", "Failed", reason="BackoffLimitExceeded")
    requeue, body = await reconcile(client, providers, at(65))
    assert requeue is None
    assert body["status"]["phase"] == "Failed"
    assert "smoke" in body["status"]["message"]
    # The Jobs are owned by the run: deleting it collects them.
    emu.delete_object(G, V, P, NS, "run")
    assert jobs(emu) == []


async def test_runner_stops_the_job_of_a_finished_run(emu: ApiEmulator, client: KubeClient) -> None:
    failing_web = {
        "name": "bad",
        "successCondition": "result == true",
        "provider": {"web": {"url": "http://checker.test/ok"}},
    }
    create_run(emu, job_metric(interval="1m"), failing_web)
    job = JobProvider(client, poll_interval=5)

    class Web:
        async def measure(self, metric: Metric, context: ProviderContext, now: datetime) -> Any:
            return Measurement(False, "false", "json")

        async def aclose(self) -> None:
            return None

    providers = ProviderSet(prometheus=Web(), web=Web(), job=job)
    # One pass: the Job starts while the web check fails and ends the run.
    requeue, body = await reconcile(client, providers, T0)
    assert body["status"]["phase"] == "Failed"
    assert requeue is None
    smoke = next(r for r in body["status"]["metricResults"] if r["name"] == "smoke")
    assert smoke["measurements"][-1]["phase"] == "Inconclusive"
    assert jobs(emu) == []
