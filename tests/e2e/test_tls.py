"""The controller and the CLI against the API emulator over HTTPS, verified against the CA
the sandbox writes into its kubeconfig (certificate-authority-data), as on a real cluster."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.e2e.conftest import READY_DELAY, CountingSandbox
from tests.e2e.dsl import (
    canary,
    healthy,
    image,
    pause,
    paused,
    promote,
    rollout,
    scenario,
    selector,
    set_weight,
    stable_is,
    weights,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def tls_cluster() -> Iterator[CountingSandbox]:
    sb = CountingSandbox(ready_delay=READY_DELAY, requeue_floor=0.2, tls=True)
    sb.start()
    try:
        sb.start_controller()
        yield sb
    finally:
        sb.stop()


def test_the_kubeconfig_carries_the_ca_that_verifies_the_server(
        tls_cluster: CountingSandbox) -> None:
    config = yaml.safe_load(tls_cluster.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"].startswith("https://127.0.0.1:")
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    trusted = ssl.create_default_context(cadata=ca)
    assert httpx.get(f"{cluster['server']}/version", verify=trusted).status_code == 200
    # Verification is real: the system's CAs do not trust the sandbox's.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{cluster['server']}/version")


def test_the_controller_runs_a_canary_over_https(tls_cluster: CountingSandbox) -> None:
    s = scenario(tls_cluster).given(rollout(
        "web", canary(set_weight(25), pause(), set_weight(75), pause(1))))
    s.remember("v1", "stable")
    s.when(image("web:2")).then(paused(at_step=1), weights(canary=25))
    s.remember("v2", "canary")
    s.when(promote()).then(healthy(), stable_is("v2"), selector("web-stable", "v2"))
    # The controller's own writes (status, ReplicaSets, Services) reached the server.
    assert tls_cluster.failed_writes("/status", codes=(400, 401, 403, 500)) == 0
    writes = {path.rsplit("/", 2)[-2] if path.endswith("/status") else path.split("/")[-2]
              for (method, path, code), _ in tls_cluster.responses.items()
              if method in ("PATCH", "PUT", "POST") and code < 300}
    assert {"rollouts", "replicasets", "services"} <= writes, writes
