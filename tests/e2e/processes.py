"""Controllers as `rollouts controller` subprocesses serving their metrics endpoint."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ControllerProcess:
    """One `rollouts controller` process; `url` is its metrics/probe endpoint."""

    def __init__(self, kubeconfig: pathlib.Path, log: pathlib.Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rollouts.cli.main", "controller",
             "--kubeconfig", str(kubeconfig), "--metrics-address", f"127.0.0.1:{self.port}",
             *args],
            stdout=log.open("ab"), stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(self.url + path, timeout=5.0)
        except httpx.TransportError:
            return None

    def status(self, path: str) -> int | None:
        response = self.get(path)
        return None if response is None else response.status_code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def controller(kubeconfig: pathlib.Path, log: pathlib.Path, *args: str
               ) -> Iterator[ControllerProcess]:
    process = ControllerProcess(kubeconfig, log, *args)
    try:
        yield process
    finally:
        process.stop()


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0,
               on_timeout: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{on_timeout()}")
