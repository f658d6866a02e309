"""The sandbox Prometheus process: lifecycle, imports through promtool, live scraping."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from rollouts.analysis.providers.base import Measurement, ProviderContext
from rollouts.analysis.providers.prometheus import PrometheusProvider
from rollouts.models.analysis import Metric
from rollouts.sandbox.prometheus import (
    PrometheusNotInstalledError,
    PrometheusServer,
    PrometheusServerError,
    Series,
    find_free_port,
    render_openmetrics,
)
from tests.analysis.conftest import History, require_binaries

# -- pure helpers (no binary needed) ----------------------------------------------------------


def test_find_free_port_is_bindable() -> None:
    import socket

    port = find_free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_render_openmetrics_sorts_samples_and_groups_families() -> None:
    text = render_openmetrics(
        [
            Series("a", {"x": "1"}, [(20, 2), (10, 1)]),
            Series("b", {}, [(10, math.nan)]),
            Series("a", {"x": 'q"uote'}, [(10, 0.5)]),
        ]
    )
    assert text.splitlines() == [
        'a{x="1"} 1 10',
        'a{x="1"} 2 20',
        'a{x="q\\"uote"} 0.5 10',
        "b NaN 10",
        "# EOF",
    ]


def test_missing_binary_says_to_run_setup() -> None:
    server = PrometheusServer(binary="prometheus-that-does-not-exist")
    with pytest.raises(PrometheusNotInstalledError, match=r"scripts/setup\.sh"):
        server.start()
    server.stop()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a 1 1700000000000\n# EOF\n", "milliseconds"),
        ("a 1\n# EOF\n", "needs a timestamp"),
        ('a{x="1"} 1\n# EOF\n', "needs a timestamp"),
    ],
)
def test_load_openmetrics_rejects_what_promtool_gets_wrong(text: str, message: str) -> None:
    server = PrometheusServer()
    try:
        with pytest.raises(ValueError, match=message):
            server.load_openmetrics(text)
    finally:
        server.stop()


# -- the real process -------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    """No process and no zombie with this pid (our child was reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return True
    return state not in "RSDZT"


@pytest.mark.prometheus
def test_start_ready_stop_leaves_nothing_behind() -> None:
    require_binaries()
    with PrometheusServer() as server:
        assert server.running
        pid = server.pid
        workdir = server.data_dir.parent
        assert httpx.get(f"{server.url}/-/ready").status_code == 200
        assert server.url.startswith("http://127.0.0.1:")
    assert pid is not None and _gone(pid)
    assert not server.running
    assert not workdir.exists()
    server.stop()  # idempotent
    with pytest.raises(PrometheusServerError):
        server.start()


@pytest.mark.prometheus
def test_import_appends_eof_and_refuses_after_start() -> None:
    require_binaries()
    ts = int(time.time()) - 3600
    with (
        PrometheusServer() as server,
        pytest.raises(PrometheusServerError, match="before start"),
    ):
        server.load_openmetrics(f"a 1 {ts}\n# EOF\n")
    server = PrometheusServer()
    try:
        server.load_openmetrics(f"a 1 {ts}\na 2 {ts + 15}\n")  # no "# EOF"
        server.load_openmetrics(f"b 7 {ts}\n# EOF\n")  # a second import adds blocks
        server.start()
        assert server.query("a", at=ts + 20)["result"][0]["value"][1] == "2"
        assert server.query("b", at=ts + 20)["result"][0]["value"][1] == "7"
    finally:
        server.stop()


@pytest.mark.prometheus
def test_promtool_failure_is_reported() -> None:
    require_binaries()
    server = PrometheusServer()
    try:
        with pytest.raises(PrometheusServerError, match="promtool"):
            server.load_openmetrics("not openmetrics at all {{{ 1 2\n# EOF\n")
    finally:
        server.stop()


@pytest.mark.prometheus
def test_startup_failure_shows_the_log() -> None:
    require_binaries()
    server = PrometheusServer(extra_args=["--no-such-flag"])
    try:
        with pytest.raises(PrometheusServerError, match="exited with code"):
            server.start()
        assert not server.running
    finally:
        server.stop()


@pytest.mark.prometheus
def test_wait_for_times_out_with_the_last_result(prometheus_history: History) -> None:
    with pytest.raises(TimeoutError, match="last: \\[\\]"):
        prometheus_history.prometheus.wait_for("no_such_metric", timeout=0.3, interval=0.1)


# -- live scraping ----------------------------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def render(self) -> bytes:
        # A counter growing at 5/s: rate() over any window is ~5 once two scrapes landed.
        value = int((time.monotonic() - self.started) * 5)
        return (
            "# HELP demo_requests_total Requests served.\n"
            "# TYPE demo_requests_total counter\n"
            f'demo_requests_total{{code="200"}} {value}\n'
        ).encode()


@pytest.fixture
def exporter() -> Iterator[str]:
    counter = _Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = counter.render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.prometheus
async def test_live_scrape_makes_rate_non_empty(prometheus_history: History, exporter: str) -> None:
    prom = prometheus_history.prometheus
    # Added while running: file_sd picks the target up without a restart.
    prom.add_targets([exporter], job="live")
    try:
        query = 'sum(rate(demo_requests_total{job="live"}[5s]))'
        result = await asyncio.to_thread(prom.wait_for, query, timeout=30.0)
        assert float(result[0]["value"][1]) > 0

        m = Metric.model_validate(
            {"name": "live", "provider": {"prometheus": {"address": prom.url, "query": query}}}
        )
        async with PrometheusProvider() as provider:
            measured = await provider.measure(m, ProviderContext(), datetime.now(UTC))
        assert isinstance(measured, Measurement)
        assert isinstance(measured.value, list) and measured.value[0] > 0
        up = prom.query(f'up{{instance="{exporter}"}}')["result"]
        assert up and up[0]["value"][1] == "1"
    finally:
        prom.set_targets([], job="live")


def test_no_prometheus_children_left() -> None:
    """Every server started above (except the session one) has been reaped."""
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if not children.exists():
        pytest.skip("/proc children list not available")
    for pid in children.read_text().split():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        assert state != "Z", f"zombie child {pid} ({cmdline!r})"
