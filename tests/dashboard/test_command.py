"""`rollouts dashboard` as typed: it prints where it listens, serves, and stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.cli import conftest as cli_fixtures
from tests.cli.conftest import Sandbox

# The CLI tests' API emulator and per-test namespace, as fixtures here too.
emulator = cli_fixtures.emulator
sandbox = cli_fixtures.sandbox


@pytest.fixture
def command(sandbox: Sandbox) -> Iterator[list[str]]:
    sandbox.rollout("web")
    yield [sys.executable, "-m", "rollouts.cli.main", "dashboard", "--kubeconfig",
           str(sandbox.kubeconfig), "--port", "0"]


def start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    assert process.stderr is not None
    line = process.stderr.readline()
    found = re.search(r"on (http://\S+)", line)
    assert found, line + (process.stderr.read() if process.poll() is not None else "")
    return process, found.group(1)


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=30)


def test_serves_the_namespace_on_loopback(command: list[str], sandbox: Sandbox) -> None:
    process, url = start(command)
    try:
        assert url.startswith("http://127.0.0.1:")
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200
        assert f'id="r--{sandbox.namespace}--web"' in page.text
        assert f"namespace {sandbox.namespace}" in page.text
    finally:
        assert stop(process) == 0


def test_elsewhere_the_printed_url_carries_the_token(command: list[str]) -> None:
    process, url = start([*command, "--address", "0.0.0.0"])
    try:
        token = url.split("?token=", 1)[1]
        assert len(token) >= 24
        bare = url.split("?", 1)[0].replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(bare, timeout=10).status_code == 401
        with httpx.Client(timeout=10, follow_redirects=True) as client:
            assert client.get(f"{bare}?token={token}").status_code == 200
            assert client.get(bare).status_code == 200  # the cookie from the first visit
    finally:
        assert stop(process) == 0
