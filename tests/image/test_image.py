"""The image's command, run the way the image runs it, without a container engine.

tests/image/test_container.py builds the Dockerfile into a real image with buildah and runs
it; this test is the quicker check beside it, and one that runs where buildah cannot. It
does what the Dockerfile does without a container: builds the project's wheel, installs it
into a clean virtualenv (dependencies from PyPI, none of this checkout on the path), and runs the
Dockerfile's ENTRYPOINT + CMD from that venv against the sandbox, with the Dockerfile's ENV.
It also holds the Dockerfile to its promises (multi-stage, non-root, installed from a wheel,
no compiler in the runtime stage). About a minute, most of it pip.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import CountingSandbox
from tests.e2e.processes import free_port
from tests.image.probe import wait_serving_and_healthy

pytestmark = pytest.mark.image

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages() -> list[str]:
    """The Dockerfile's stages, each from its FROM line on."""
    return ["FROM" + part for part in re.split(r"^FROM", DOCKERFILE, flags=re.M)[1:]]


def instruction(stage: str, name: str) -> list[str]:
    found = re.findall(rf"^{name}\s+(\[.*\])\s*$", stage, flags=re.M)
    assert found, f"no exec-form {name} in the runtime stage"
    return list(json.loads(found[-1]))


def runtime_env(stage: str) -> dict[str, str]:
    text = "\n".join(re.findall(r"^ENV\s+((?:.*\\\n)*.*)$", stage, flags=re.M))
    return dict(re.findall(r"(\w+)=(\S+)", text.replace("\\\n", " ")))


def test_dockerfile_keeps_its_promises() -> None:
    build, runtime = stages()
    assert " AS build" in build.splitlines()[0]
    assert "pip wheel" in build
    assert re.search(r"^USER\s+65532(:65532)?\s*$", runtime, flags=re.M), "runs as non-root"
    assert "--no-index --find-links=/wheels rollouts" in runtime, "installed from the wheel"
    for tool in ("gcc", "build-essential", "apt-get install", "COPY rollouts", "COPY ."):
        assert tool not in runtime, f"{tool!r} in the runtime stage"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, flags=re.M)
    assert base is not None and "slim" in base.group(1)
    assert build.startswith("FROM ${PYTHON_IMAGE}") and runtime.startswith("FROM ${PYTHON_IMAGE}")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    work = tmp_path_factory.mktemp("image")
    # The build stage's context: what the Dockerfile copies, and nothing else.
    source = work / "src"
    for copied in re.findall(r"^COPY (?!--)(.+) \S+$", stages()[0], flags=re.M):
        for name in copied.split():
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, source / name,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                source.mkdir(exist_ok=True)
                shutil.copy(ROOT / name, source / name)
    wheels = work / "wheels"
    env = work / "venv"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "--disable-pip-version-check", "-w", str(wheels), str(source)],
                          capture_output=True, text=True, timeout=300, env=clean_env(env))
    assert done.returncode == 0, done.stderr
    (wheel,) = wheels.glob("rollouts-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=120)
    done = subprocess.run([str(env / "bin" / "pip"), "install", "-q",
                           "--disable-pip-version-check", str(wheel)],
                          capture_output=True, text=True, timeout=600, env=clean_env(env),
                          cwd=work)
    assert done.returncode == 0, done.stderr
    yield env


def clean_env(venv: pathlib.Path) -> dict[str, str]:
    """The Dockerfile's ENV, the venv first on PATH, nothing of this checkout importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(runtime_env(stages()[-1]))
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return env


def test_version_from_the_wheel(venv: pathlib.Path, tmp_path: pathlib.Path) -> None:
    entrypoint = instruction(stages()[-1], "ENTRYPOINT")
    done = subprocess.run([*entrypoint, "version"], capture_output=True, text=True,
                          env=clean_env(venv), cwd=tmp_path, timeout=60)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert done.returncode == 0, done.stderr
    assert version in done.stdout
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import rollouts; print(rollouts.__file__)"],
                           capture_output=True, text=True, env=clean_env(venv), cwd=tmp_path)
    assert str(venv) in where.stdout, "rollouts must come from the venv, not this checkout"


@pytest.mark.e2e
def test_entrypoint_runs_the_controller(venv: pathlib.Path, sandbox: CountingSandbox,
                                        tmp_path: pathlib.Path) -> None:
    runtime = stages()[-1]
    command = instruction(runtime, "ENTRYPOINT") + instruction(runtime, "CMD")
    port = free_port()
    command = [f"--metrics-address=127.0.0.1:{port}" if a.startswith("--metrics-address")
               else a for a in command]
    sandbox.apply((ROOT / "examples" / "canary.yaml").read_text())
    log = (tmp_path / "controller.log").open("wb")
    process = subprocess.Popen(
        [*command, "--kubeconfig", str(sandbox.kubeconfig), "-n", sandbox.namespace,
         "--standalone"],
        stdout=log, stderr=subprocess.STDOUT, env=clean_env(venv), cwd=tmp_path)
    try:
        wait_serving_and_healthy(port, sandbox, tmp_path / "controller.log")
    finally:
        process.terminate()
        process.wait(timeout=20)
    # One JSON object a line (the container's log format).
    first = (tmp_path / "controller.log").read_text().splitlines()[0]
    assert isinstance(json.loads(first), dict)
