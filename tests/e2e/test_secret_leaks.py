"""Issue 11: a canary secret never leaks, through the real controller (a subprocess) in the
sandbox.

A Secret holds a canary value full of characters that change under encoding (quotes,
backslash, slash, plus, spaces). A web metric sends it as a query parameter and a header to a
local server that echoes it back in its JSON body (the value the controller stores), and a
dry-run metric's server answers 500 with the secret in the error text. After the rollout
completes, every encoding of the canary is searched for in: the AnalysisRuns (spec and
status), the Rollout, every Event, the controller's log and the CLI's output (`get`,
`status -o json`, `get -o yaml`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from email.message import Message
from urllib.parse import unquote, urlsplit

import pytest
from typer.testing import CliRunner

from rollouts.analysis.masking import encodings
from rollouts.cli.main import app
from rollouts.sandbox.cluster import Sandbox
from tests.json_http import serve_json

pytestmark = pytest.mark.e2e

CANARY = 'CANARY-7f3e "q\\uote" s/l+a sh\'s'
NS = "default"


def echo(path: str, headers: Message) -> tuple[int, object]:
    # The URL carries the value as substituted (like Argo); httpx percent-encodes what
    # must be, and `+` stays a literal plus (so no parse_qs, which reads it as a space).
    token = unquote(urlsplit(path).query.partition("token=")[2])
    header = headers.get("X-Token", "")
    if path.startswith("/broken"):
        return 500, f"backend error for token {token}".encode()
    return 200, {"ok": token == header == CANARY, "echo": token}


@pytest.fixture
def echo_server() -> Iterator[str]:
    with serve_json(echo) as url:
        yield url


def manifests(url: str) -> list[dict[str, object]]:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "canary", "namespace": NS},
              "data": {"token": base64.b64encode(CANARY.encode()).decode()}}
    web = {"url": url + "/metric?token={{args.token}}",
           "headers": [{"key": "X-Token", "value": "{{args.token}}"}]}
    template = {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "leaky", "namespace": NS},
        "spec": {
            "args": [{"name": "token",
                      "valueFrom": {"secretKeyRef": {"name": "canary", "key": "token"}}}],
            "metrics": [
                {"name": "echo", "interval": "1s", "count": 2,
                 "successCondition": "result.ok == true", "provider": {"web": web}},
                {"name": "broken", "interval": "1s", "count": 2,
                 "successCondition": "result == true",
                 "provider": {"web": {**web, "url": url + "/broken?token={{args.token}}"}}},
            ],
            "dryRun": [{"metricName": "broken"}],
        },
    }
    rollout = {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "leak", "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "leak"}},
            "template": {"metadata": {"labels": {"app": "leak"}},
                         "spec": {"containers": [{"name": "app", "image": "app:1.0"}]}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 50},
                {"analysis": {"templates": [{"templateName": "leaky"}]}},
            ]}},
        },
    }
    return [secret, template, rollout]


def test_a_canary_secret_appears_nowhere(echo_server: str) -> None:
    with Sandbox(ready_delay=0.1, requeue_floor=0.2) as sb:
        sb.start_controller(process=True)
        sb.apply(manifests(echo_server))
        sb.wait_phase("leak", "Healthy", timeout=40)
        sb.set_image("leak", "app:2.0")
        sb.wait_for("the step analysis to finish", lambda: any(
            (r.get("status") or {}).get("phase") == "Successful"
            for r in sb.analysis_runs("leak").values()), timeout=60)
        sb.wait_phase("leak", "Healthy", timeout=40)
        runs = sb.analysis_runs("leak")
        cli = [CliRunner().invoke(app, ["--kubeconfig", str(sb.kubeconfig), *args],
                                  env={"COLUMNS": "200"})
               for args in (["get", "leak"], ["status", "leak", "-o", "json"],
                            ["get", "leak", "-o", "yaml"])]
        places = {
            "AnalysisRuns": json.dumps(runs, ensure_ascii=False),
            "Rollout": json.dumps(sb.rollout("leak"), ensure_ascii=False),
            "Events": json.dumps(sb.emulator.list_objects("", "v1", "events", NS),
                                 ensure_ascii=False),
            "CLI": "\n".join(r.output for r in cli),
        }
        sb.stop_controller()
        places["controller log"] = (sb.workdir / "controller.log").read_text(errors="replace")

    # The run did measure with the secret (the echo server compared it), and failed the
    # dry-run metric with the server's error text, masked.
    [run] = runs.values()
    results = {r["name"]: r for r in run["status"]["metricResults"]}
    assert results["echo"]["phase"] == "Successful", results
    broken = results["broken"]["measurements"][0]
    assert broken["phase"] == "Error" and "*****" in broken["message"], broken
    assert run["spec"]["args"] == [{"name": "token", "valueFrom": {
        "secretKeyRef": {"name": "canary", "key": "token"}}}]
    assert "CANARY" not in json.dumps(run)
    for where, text in places.items():
        for form in encodings(CANARY):
            assert form not in text, f"{where} holds the secret as {form!r}"
    assert all(r.exit_code == 0 for r in cli[:1]), cli[0].output
