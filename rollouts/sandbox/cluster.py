"""A whole local cluster in one object: API emulator, kubelet simulator, CRDs, controller.

Used by `rollouts demo`, the end-to-end tests and the benchmark. The controller is the real
one: either in a thread of this process (fast, for tests) or as a `rollouts controller`
subprocess that can be killed with SIGKILL at any instant (for restart scenarios).

With `prometheus=True` the sandbox also runs a real Prometheus (the Debian binary, scraping
every second) and the simulated application of `rollouts.sandbox.app`, which exports request
metrics per ReplicaSet whose error rate and latency follow the image tag ("bad", "slow",
"idle"). The analysis catalog (`analysis/*.yaml`) is installed as ClusterAnalysisTemplates
with the default of their `prometheus-address` arg pointed at this Prometheus, so manifests
written for a real cluster (e.g. `examples/canary-analysis.yaml`) run unchanged; the
controller also gets it as its default address for metrics that name none.
"""

from __future__ import annotations

import copy
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from rollouts.operator import OperatorConfig, run_operator
from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.app import AppSimulator
from rollouts.sandbox.deployments import ControllerGroup, DeploymentController
from rollouts.sandbox.emulator_thread import EmulatorThread
from rollouts.sandbox.kubelet import KubeletSimulator, never_ready_if_image_contains
from rollouts.sandbox.prometheus import PrometheusServer

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
ROUTER_CRDS = pathlib.Path(__file__).resolve().parent / "crds" / "routers.yaml"
EXAMPLES_DIR = ROOT / "examples"
CATALOG_DIR = ROOT / "analysis"
GROUP, VERSION = "rollouts.dev", "v1alpha1"


class SandboxError(RuntimeError):
    pass


class Sandbox:
    """Start with `with Sandbox() as sb:`; everything stops (and temp files go) on exit."""

    def __init__(self, *, ready_delay: float = 0.2, namespace: str = "default",
                 workdir: pathlib.Path | None = None, requeue_floor: float = 0.2,
                 prometheus: bool = False, scrape_interval: float = 1.0,
                 app_endpoints: int = 16, tls: bool = False) -> None:
        self.namespace = namespace
        # tls: the emulator serves HTTPS and the kubeconfig carries its CA (as a cluster's).
        self.emulator = ApiEmulator(tls=tls)
        self.kubelet = KubeletSimulator(self.emulator, ready_delay=ready_delay,
                                        never_ready=never_ready_if_image_contains("crashloop"))
        # Deployments get pods too (a Rollout's workloadRef migrates from one).
        self._thread = EmulatorThread(self.emulator, kubelet=ControllerGroup(
            self.kubelet, DeploymentController(self.emulator)))
        self._own_dir = workdir is None
        self.workdir = workdir or pathlib.Path(tempfile.mkdtemp(prefix="rollouts-sandbox-"))
        self.kubeconfig = self.workdir / "kubeconfig"
        self.requeue_floor = requeue_floor
        self._operator: threading.Thread | None = None
        self._operator_stop: threading.Event | None = None
        self._operator_errors: list[BaseException] = []
        self._process: subprocess.Popen[bytes] | None = None
        self.prometheus: PrometheusServer | None = (
            PrometheusServer(job="app", scrape_interval=scrape_interval) if prometheus else None)
        self.app: AppSimulator | None = None
        self.app_endpoints = app_endpoints
        self._prometheus_url: str | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Sandbox:
        self._thread.start()
        try:
            for path in sorted(CRD_DIR.glob("*.yaml")):
                self.emulator.apply_yaml(path)
            # The kinds the traffic routers read and write (HTTPRoute, VirtualService, ...).
            self.emulator.apply_yaml(ROUTER_CRDS)
            self.emulator.write_kubeconfig(self.kubeconfig, namespace=self.namespace)
            if self.prometheus is not None:
                # The app's endpoints are registered before Prometheus starts, and start()
                # returns once each has been scraped: Prometheus applies target changes in
                # 5 s batches, and this way nothing later waits for one.
                self.app = AppSimulator(self.emulator, self.prometheus, job="app",
                                        spare_endpoints=self.app_endpoints).start()
                self.prometheus.start()
                self._prometheus_url = self.prometheus.url
                self.install_catalog()
                self.app.wait_scraped()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            self.stop_controller()
        finally:
            if self.app is not None:
                self.app.stop()
                self.app = None
            if self.prometheus is not None:
                self.prometheus.stop()
            self._thread.stop()
        if self._own_dir:
            for path in sorted(self.workdir.glob("**/*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            self.workdir.rmdir()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.emulator.url

    # --- Prometheus and the analysis catalog -----------------------------------------------
    @property
    def prometheus_url(self) -> str:
        """Base URL of the sandbox's Prometheus (it stays known after `stop_prometheus`)."""
        if self._prometheus_url is None:
            raise SandboxError("this sandbox has no Prometheus: use Sandbox(prometheus=True)")
        return self._prometheus_url

    def catalog(self) -> list[dict[str, Any]]:
        """The catalog's ClusterAnalysisTemplates, `prometheus-address` defaulting to ours."""
        docs = []
        for path in sorted(CATALOG_DIR.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc:
                    continue
                for arg in (doc.get("spec") or {}).get("args") or ():
                    if arg.get("name") == "prometheus-address" and "value" in arg:
                        arg["value"] = self.prometheus_url
                docs.append(doc)
        return docs

    def install_catalog(self) -> list[dict[str, Any]]:
        """Apply every catalog ClusterAnalysisTemplate (done by start() with Prometheus)."""
        return [self.emulator.apply_manifest(doc) for doc in self.catalog()]

    def stop_prometheus(self) -> None:
        """Break the metric source: stop Prometheus for good (queries get connection
        refused). For error-path tests; the address stays in the templates."""
        if self.prometheus is None:
            raise SandboxError("this sandbox has no Prometheus: use Sandbox(prometheus=True)")
        self.prometheus.stop()

    def analysis_runs(self, name: str) -> dict[str, dict[str, Any]]:
        """The AnalysisRuns a Rollout owns, by name."""
        uid = self.rollout(name)["metadata"]["uid"]
        return {
            run["metadata"]["name"]: run
            for run in self.emulator.list_objects(GROUP, VERSION, "analysisruns", self.namespace)
            if any(o.get("uid") == uid for o in run["metadata"].get("ownerReferences") or [])
        }

    # --- the controller --------------------------------------------------------------------
    def start_controller(self, *, process: bool = False, timeout: float = 30.0) -> None:
        """Run the real controller: in a thread, or as a killable subprocess."""
        if process:
            log = (self.workdir / "controller.log").open("ab")
            command = [sys.executable, "-m", "rollouts.cli.main", "controller",
                       "--kubeconfig", str(self.kubeconfig), "-n", self.namespace,
                       "--standalone"]
            if self._prometheus_url is not None:
                command += ["--prometheus-address", self._prometheus_url]
            self._process = subprocess.Popen(
                command,
                stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            return
        stop, ready = threading.Event(), threading.Event()
        self._operator_errors = []

        def main() -> None:
            try:
                run_operator(
                    OperatorConfig(requeue_floor=self.requeue_floor, cancellation_timeout=2.0,
                                   standalone=True, prometheus_address=self._prometheus_url),
                    kubeconfig=str(self.kubeconfig),
                    namespaces=(self.namespace,),
                    stop_flag=stop,
                    ready_flag=ready,
                )
            except BaseException as exc:  # reported by stop_controller()
                self._operator_errors.append(exc)

        thread = threading.Thread(target=main, name="rollouts-controller", daemon=True)
        thread.start()
        if not ready.wait(timeout):
            raise SandboxError("the controller did not become ready")
        self._operator, self._operator_stop = thread, stop

    @property
    def controller_process(self) -> subprocess.Popen[bytes] | None:
        """The controller subprocess (start_controller(process=True)), if one runs."""
        return self._process

    def kill_controller(self) -> None:
        """SIGKILL the controller subprocess: no cleanup, no last write."""
        if self._process is None:
            raise SandboxError("kill_controller needs start_controller(process=True)")
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=10)
        self._process = None

    def stop_controller(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None
        if self._operator is not None and self._operator_stop is not None:
            self._operator_stop.set()
            self._operator.join(timeout=20)
            alive = self._operator.is_alive()
            self._operator = None
            if alive:
                raise SandboxError("the controller did not stop")
            if self._operator_errors:
                raise SandboxError(f"the controller failed: {self._operator_errors[0]!r}")

    # --- objects ---------------------------------------------------------------------------
    def apply(
        self, manifests: str | pathlib.Path | Iterable[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Create or update objects (a YAML path or text, or dicts), in the sandbox namespace."""
        if isinstance(manifests, str | pathlib.Path):
            text = manifests.read_text() if isinstance(manifests, pathlib.Path) else manifests
            docs = [d for d in yaml.safe_load_all(text) if d]
        else:
            docs = [copy.deepcopy(d) for d in manifests]
        applied = []
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("namespace", self.namespace)
            applied.append(self.emulator.apply_manifest(doc))
        return applied

    def rollout(self, name: str) -> dict[str, Any]:
        obj = self.emulator.get_object(GROUP, VERSION, "rollouts", self.namespace, name)
        if obj is None:
            raise SandboxError(f"Rollout {name} not found")
        return obj

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.rollout(name).get("status") or {})

    def replica_sets(self, name: str) -> dict[str, dict[str, Any]]:
        """The Rollout's ReplicaSets by pod-template hash."""
        uid = self.rollout(name)["metadata"]["uid"]
        result = {}
        for rs in self.emulator.list_objects("apps", "v1", "replicasets", self.namespace):
            owners = rs["metadata"].get("ownerReferences") or []
            if any(o.get("uid") == uid for o in owners):
                result[rs["metadata"]["labels"]["rollouts-pod-template-hash"]] = rs
        return result

    def sizes(self, name: str) -> dict[str, tuple[int, int]]:
        """(spec replicas, available replicas) per revision hash."""
        return {
            h: (rs["spec"].get("replicas", 0), (rs.get("status") or {}).get("availableReplicas", 0))
            for h, rs in self.replica_sets(name).items()
        }

    def service_selector(self, name: str) -> dict[str, str]:
        svc = self.emulator.get_object("", "v1", "services", self.namespace, name)
        if svc is None:
            raise SandboxError(f"Service {name} not found")
        return dict(svc["spec"].get("selector") or {})

    def set_image(self, name: str, image: str, container: int = 0) -> None:
        rollout = self.rollout(name)
        containers = copy.deepcopy(rollout["spec"]["template"]["spec"]["containers"])
        containers[container]["image"] = image
        self.emulator.patch_object(GROUP, VERSION, "rollouts", self.namespace, name,
                                   {"spec": {"template": {"spec": {"containers": containers}}}})

    def patch_spec(self, name: str, patch: dict[str, Any]) -> None:
        self.emulator.patch_object(GROUP, VERSION, "rollouts", self.namespace, name,
                                   {"spec": patch})

    def patch_status(self, name: str, patch: dict[str, Any]) -> None:
        """A status write as `rollouts promote/abort/...` does it (status subresource)."""
        self.emulator.patch_object(GROUP, VERSION, "rollouts", self.namespace, name,
                                   {"status": patch}, subresource="status")

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            e for e in self.emulator.list_objects("", "v1", "events", self.namespace)
            if (e.get("involvedObject") or {}).get("name") == name
        ]

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 30.0,
                 interval: float = 0.05) -> Any:
        """Poll `check` until it returns something truthy; fail with the last value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(interval)
        raise SandboxError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")

    def wait_phase(self, name: str, phase: str, *, step: int | None = None,
                   timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the controller has seen the latest spec and reports `phase`."""

        def check() -> dict[str, Any] | None:
            obj = self.rollout(name)
            status = obj.get("status") or {}
            if status.get("observedGeneration") != obj["metadata"].get("generation"):
                return None
            if status.get("phase") != phase:
                return None
            if step is not None and status.get("currentStepIndex") != step:
                return None
            return status

        return dict(self.wait_for(f"{name} {phase}" + (f" at step {step}" if step is not None
                                                     else ""), check, timeout))
