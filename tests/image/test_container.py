"""The Dockerfile built into a real OCI image with buildah, and the image run with runc.

No base image can be pulled here (no container registry is reachable), so the base the
Dockerfile names by `ARG PYTHON_IMAGE` is assembled locally: Debian bookworm's Python by
`mmdebstrap` from the Debian mirror, committed by buildah from scratch. The project's own
Dockerfile is then built unchanged (`buildah bud --build-arg PYTHON_IMAGE=...`: both stages,
the wheel, the bind mount of the wheels) and the image is run: `rollouts version`, its user,
no compiler, and its ENTRYPOINT + CMD as a controller against the sandbox.

The base is kept in buildah's storage between runs (about 45 s to make, 250 MB); the image
is built afresh each run (about a minute, mostly pip) and removed afterwards.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import tomllib
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import CountingSandbox
from tests.e2e.processes import free_port
from tests.image.probe import wait_serving_and_healthy

pytestmark = pytest.mark.image

ROOT = pathlib.Path(__file__).resolve().parents[2]
BASE = "localhost/rollouts-test-base:bookworm"
# What a python:*-slim image has and Debian's minimal system lacks: pip, venv, and the tools
# the Dockerfile's RUN lines call (groupadd and useradd come with passwd).
BASE_PACKAGES = "python3,python3-pip,python3-venv,passwd,ca-certificates"
# A CA bundle that trusts what this machine trusts (a TLS-inspecting proxy may sit between
# it and PyPI): the build stage's `pip wheel` fetches the dependencies from PyPI.
HOST_CA = pathlib.Path("/etc/ssl/certs/ca-certificates.crt")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: run scripts/setup.sh")
    return found


def buildah(*args: str, timeout: float = 120) -> str:
    done = subprocess.run([tool("buildah"), *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"buildah {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def has_image(name: str) -> bool:
    return subprocess.run([tool("buildah"), "inspect", "--type", "image", name],
                          capture_output=True, timeout=60).returncode == 0


def make_base(work: pathlib.Path) -> None:
    """A python-slim-like base from the Debian mirror, committed as BASE."""
    tool("runc")  # buildah's runtime for the RUN lines
    rootfs = work / "rootfs.tar"
    done = subprocess.run([tool("mmdebstrap"), "--variant=minbase", f"--include={BASE_PACKAGES}",
                           "bookworm", str(rootfs)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    container = buildah("from", "scratch")
    try:
        mount = pathlib.Path(buildah("mount", container))
        subprocess.run(["tar", "-C", str(mount), "-xf", str(rootfs)], check=True, timeout=300)
        # Like the official Python images, let pip install into the image's Python.
        for marker in mount.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        if HOST_CA.exists():
            shutil.copy(HOST_CA, mount / "etc/ssl/certs/ca-certificates.crt")
        buildah("umount", container)
        buildah("config", "--env", "PIP_CERT=/etc/ssl/certs/ca-certificates.crt", container)
        buildah("commit", "--quiet", container, BASE, timeout=600)
    finally:
        subprocess.run([tool("buildah"), "rm", container], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not has_image(BASE):
        make_base(tmp_path_factory.mktemp("base"))
    name = f"localhost/rollouts:test-{uuid.uuid4().hex[:8]}"
    buildah("bud", "--quiet", "--network", "host", "--build-arg", f"PYTHON_IMAGE={BASE}",
            "--tag", name, "--file", str(ROOT / "Dockerfile"), str(ROOT), timeout=1200)
    yield name
    subprocess.run([tool("buildah"), "rmi", "--force", name], capture_output=True, timeout=120)


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = buildah("from", "--quiet", image)
    yield name
    subprocess.run([tool("buildah"), "rm", name], capture_output=True, timeout=60)


def config(image: str) -> dict[str, object]:
    found: dict[str, object] = json.loads(buildah("inspect", "--type", "image", image))
    return found["OCIv1"]["config"]  # type: ignore[index,no-any-return]


def run(container: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("buildah"), "run", container, "--", *command],
                          capture_output=True, text=True, timeout=120)


def test_the_image_runs_rollouts_version_as_non_root(image: str, container: str) -> None:
    settings = config(image)
    assert settings["User"] == "65532:65532"
    assert settings["Entrypoint"] == ["rollouts"]
    assert settings["Cmd"] == ["controller", "--metrics-address=:8080"]
    done = run(container, "rollouts", "version")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"rollouts {version}"
    assert run(container, "id", "-u").stdout.strip() == "65532"
    found = run(container, "sh", "-c", "command -v gcc cc c++ make || true")
    assert found.stdout.strip() == "", f"a compiler in the runtime image: {found.stdout}"
    sources = run(container, "sh", "-c", "ls /src /wheels 2>/dev/null || true")
    assert sources.stdout.strip() == "", "build-stage files in the runtime image"


@pytest.mark.e2e
def test_the_image_runs_the_controller(image: str, container: str, sandbox: CountingSandbox,
                                       tmp_path: pathlib.Path) -> None:
    """The image's ENTRYPOINT + CMD (only the metrics port moved to a free one, on the
    host's network to reach the sandbox) reconciles a Rollout and answers its probes."""
    settings = config(image)
    command = [*settings["Entrypoint"], *settings["Cmd"]]  # type: ignore[misc]
    port = free_port()
    command = [f"--metrics-address=127.0.0.1:{port}" if a.startswith("--metrics-address")
               else a for a in command]
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copy(sandbox.kubeconfig, kubeconfig)
    kubeconfig.chmod(0o644)  # readable by the image's user
    sandbox.apply((ROOT / "examples" / "canary.yaml").read_text())
    log = (tmp_path / "controller.log").open("wb")
    process = subprocess.Popen(
        [tool("buildah"), "run", "--network", "host",
         "--volume", f"{kubeconfig}:/kube/config:ro", container, "--",
         *command, "--kubeconfig", "/kube/config", "-n", sandbox.namespace, "--standalone"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_serving_and_healthy(port, sandbox, tmp_path / "controller.log")
        assert "Traceback" not in (tmp_path / "controller.log").read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()
