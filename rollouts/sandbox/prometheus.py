"""A real Prometheus server for tests and the local playground.

Runs the Debian `prometheus` binary (2.42 on bookworm) on 127.0.0.1 with its own data dir
and a generated config. Two ways to get data into it:

* `load_openmetrics(text)` before `start()`: `promtool tsdb create-blocks-from openmetrics`
  turns the text into TSDB blocks inside the data dir, so a whole metric history is
  queryable at past timestamps the moment the server is ready (no waiting in real time).
* live scraping: scrape targets ("host:port") per job, delivered through `file_sd_configs`
  so `add_targets()` can change them while the server runs.

Things about promtool/prometheus 2.42 this module works around or checks for:

* promtool rejects input that does not end with `# EOF`; we append it when missing.
* timestamps are seconds (floats allowed). promtool silently accepts milliseconds and
  produces blocks in the year ~58000, so we reject timestamps that look like milliseconds.
* samples of one series must be in time order: promtool silently *drops* out-of-order
  samples. `render_openmetrics()` sorts them for you.
* overlapping blocks are allowed by default since 2.39, so imported history may reach up
  to (or past) "now" and coexist with the head that live scrapes write to.
* the default 15d retention would delete an imported history older than that at the first
  compaction, so retention is set far out.
* the discovery manager batches target updates every 5 s: the first scrape of a new target
  happens ~5 s after it appears, and `rate()` needs two scrapes. Wait with `wait_for()`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from rollouts.errors import RolloutsError

__all__ = [
    "PrometheusNotInstalledError",
    "PrometheusServer",
    "PrometheusServerError",
    "Series",
    "find_free_port",
    "render_openmetrics",
]

# A timestamp above this is taken as milliseconds (1e11 s is the year 5138).
_MAX_SECONDS_TIMESTAMP = 1e11


class PrometheusServerError(RolloutsError):
    """The sandbox Prometheus could not be started, loaded or queried."""


class PrometheusNotInstalledError(PrometheusServerError):
    """The `prometheus` or `promtool` binary is not on PATH."""


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now.

    The port is released before returning, so another process could take it in between;
    `PrometheusServer.start()` retries on a bind failure for that reason.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Series:
    """One time series for `render_openmetrics`: samples are (unix seconds, value)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    samples: Sequence[tuple[float, float]] = ()


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def render_openmetrics(series: Iterable[Series]) -> str:
    """OpenMetrics text (untyped families, `# EOF` terminated) that promtool accepts.

    Series of one metric name are kept together and samples sorted by time, as promtool
    requires (it drops out-of-order samples without a word).
    """
    by_name: dict[str, list[Series]] = {}
    for one in series:
        by_name.setdefault(one.name, []).append(one)
    lines: list[str] = []
    for name, group in by_name.items():
        for one in group:
            label_text = ",".join(
                f'{key}="{_escape_label_value(val)}"' for key, val in sorted(one.labels.items())
            )
            selector = f"{name}{{{label_text}}}" if label_text else name
            for ts, value in sorted(one.samples, key=lambda sample: sample[0]):
                lines.append(f"{selector} {_format_number(value)} {_format_number(ts)}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _check_timestamps(text: str) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        rest = stripped[stripped.rfind("}") + 1 :] if "}" in stripped else stripped
        tokens = rest.split()
        # `name value ts` without labels, `value ts` after a label set.
        expected = 2 if "}" in stripped else 3
        if len(tokens) < expected:
            raise ValueError(
                f"line {number}: every sample needs a timestamp (unix seconds): {line!r}"
            )
        try:
            ts = float(tokens[-1])
        except ValueError as exc:
            raise ValueError(f"line {number}: bad timestamp in {line!r}") from exc
        if ts > _MAX_SECONDS_TIMESTAMP:
            raise ValueError(
                f"line {number}: timestamp {tokens[-1]} looks like milliseconds; "
                "OpenMetrics timestamps are seconds"
            )


def _duration(seconds: float) -> str:
    millis = max(1, round(seconds * 1000))
    return f"{millis}ms"


def _stop_process(process: subprocess.Popen[bytes], grace: float) -> None:
    """Terminate, then kill, and always reap (no zombie is left behind)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


class PrometheusServer:
    """A Prometheus process on 127.0.0.1 with a free port and a temporary data dir.

    >>> with PrometheusServer(targets=["127.0.0.1:8000"], job="app") as prom:
    ...     prom.wait_for('rate(requests_total[5s])', timeout=30)

    Everything lives in one temporary directory removed by `stop()` (unless `keep_files`).
    """

    def __init__(
        self,
        targets: Sequence[str] = (),
        *,
        job: str = "app",
        scrape_interval: float = 1.0,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str = "prometheus",
        promtool: str = "promtool",
        startup_timeout: float = 20.0,
        keep_files: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.host = host
        self.scrape_interval = scrape_interval
        self.startup_timeout = startup_timeout
        self.keep_files = keep_files
        self.extra_args = tuple(extra_args)
        self.default_job = job
        self._requested_port = port
        self._port: int | None = None
        self._binary_name = binary
        self._promtool_name = promtool
        self._jobs: dict[str, list[str]] = {job: list(targets)}
        self._workdir = Path(tempfile.mkdtemp(prefix="rollouts-prometheus-"))
        self.data_dir = self._workdir / "data"
        self.data_dir.mkdir()
        self.config_file = self._workdir / "prometheus.yml"
        self.log_file = self._workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None
        self._closed = False
        # Last resort if the owner forgets stop(): kill the child at collection or exit.
        self._finalizer = weakref.finalize(
            self, PrometheusServer._cleanup, None, None if keep_files else self._workdir
        )

    # -- paths and state ---------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise PrometheusServerError("the server has not been started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:40123 (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _sd_file(self, job: str) -> Path:
        return self._workdir / f"targets-{job}.json"

    @staticmethod
    def _which(name: str) -> str:
        path = shutil.which(name)
        if path is None:
            raise PrometheusNotInstalledError(
                f"{name!r} is not on PATH: run scripts/setup.sh "
                "(it installs the Debian 'prometheus' package, which ships promtool too)"
            )
        return path

    # -- data ----------------------------------------------------------------------------

    def load_openmetrics(self, text: str) -> None:
        """Import an OpenMetrics history into the data dir (before `start()` only).

        Timestamps are unix seconds; every sample needs one. May be called several times
        (each call writes its own blocks; overlapping blocks are merged at query time).
        """
        if self.running:
            raise PrometheusServerError("load_openmetrics() must be called before start()")
        if not text.rstrip().endswith("# EOF"):
            text = text.rstrip("\n") + "\n# EOF\n"
        _check_timestamps(text)
        promtool = self._which(self._promtool_name)
        handle, name = tempfile.mkstemp(dir=self._workdir, suffix=".om")
        os.close(handle)
        source = Path(name)
        try:
            source.write_text(text, encoding="utf-8")
            result = subprocess.run(
                [
                    promtool,
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    "--quiet",
                    str(source),
                    str(self.data_dir),
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            source.unlink(missing_ok=True)
        if result.returncode != 0:
            raise PrometheusServerError(
                "promtool tsdb create-blocks-from openmetrics failed: "
                + (result.stderr.strip() or result.stdout.strip())
            )

    # -- targets and config ------------------------------------------------------------

    def _write_targets(self, job: str) -> None:
        groups = [{"targets": self._jobs[job], "labels": {}}] if self._jobs[job] else []
        path = self._sd_file(job)
        tmp = path.with_suffix(".tmp")
        # Rename is atomic, so Prometheus never reads a half-written file.
        tmp.write_text(json.dumps(groups), encoding="utf-8")
        os.replace(tmp, path)

    def _write_config(self) -> None:
        interval = _duration(self.scrape_interval)
        config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {
                    "job_name": job,
                    "scrape_interval": interval,
                    "scrape_timeout": interval,
                    "file_sd_configs": [
                        {"files": [str(self._sd_file(job))], "refresh_interval": "1s"}
                    ],
                }
                for job in self._jobs
            ],
        }
        for job in self._jobs:
            self._write_targets(job)
        # JSON is YAML, and needs no extra dependency here.
        self.config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")

    def add_targets(self, targets: Iterable[str], *, job: str | None = None) -> None:
        """Scrape more "host:port" targets, also while running.

        Targets of a known job are picked up through file_sd (within ~5 s: Prometheus
        batches discovery updates); a new job rewrites the config and reloads it (SIGHUP).
        """
        name = job or self.default_job
        new_job = name not in self._jobs
        known = self._jobs.setdefault(name, [])
        known.extend(target for target in targets if target not in known)
        if new_job:
            self._write_config()
            if self.running:
                assert self._process is not None
                self._process.send_signal(signal.SIGHUP)
        else:
            self._write_targets(name)

    def set_targets(self, targets: Iterable[str], *, job: str | None = None) -> None:
        """Replace the targets of an existing job (removing them stops their scrapes)."""
        name = job or self.default_job
        if name not in self._jobs:
            self.add_targets(targets, job=name)
            return
        self._jobs[name] = list(dict.fromkeys(targets))
        self._write_targets(name)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> PrometheusServer:
        """Start the process and block until /-/ready answers 200 (or raise)."""
        if self.running:
            return self
        if self._closed:
            raise PrometheusServerError("a stopped PrometheusServer cannot be started again")
        binary = self._which(self._binary_name)
        self._write_config()
        attempts = 1 if self._requested_port is not None else 3
        last_error: PrometheusServerError | None = None
        for _ in range(attempts):
            self._port = self._requested_port or find_free_port(self.host)
            try:
                self._launch(binary)
                return self
            except PrometheusServerError as exc:
                last_error = exc
                if "address already in use" not in str(exc):
                    break
        assert last_error is not None
        raise last_error

    def _launch(self, binary: str) -> None:
        command = [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={self.host}:{self.port}",
            # Imported histories may be old; the default 15d would delete them.
            "--storage.tsdb.retention.time=100y",
            *self.extra_args,
        ]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
            )
        self._finalizer.detach()
        self._finalizer = weakref.finalize(
            self,
            PrometheusServer._cleanup,
            self._process,
            None if self.keep_files else self._workdir,
        )
        try:
            self._wait_ready()
        except BaseException:
            _stop_process(self._process, grace=2.0)
            raise

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.01
        with httpx.Client(timeout=1.0) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise PrometheusServerError(
                        f"prometheus exited with code {code} during startup:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return
                if time.monotonic() >= deadline:
                    raise PrometheusServerError(
                        f"prometheus not ready after {self.startup_timeout}s:\n{self.log_tail()}"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, SIGKILL after `grace` seconds, reap; then remove the temp dir."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._process is not None:
            _stop_process(self._process, grace)
        self._closed = True
        self._finalizer()  # idempotent: removes the work dir unless keep_files

    @staticmethod
    def _cleanup(process: subprocess.Popen[bytes] | None, workdir: Path | None) -> None:
        if process is not None:
            _stop_process(process, grace=2.0)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- queries ---------------------------------------------------------------------

    def query(self, promql: str, at: float | None = None, timeout: float = 10.0) -> Any:
        """Run an instant query; returns the API's `data` ({resultType, result})."""
        params: dict[str, str] = {"query": promql}
        if at is not None:
            params["time"] = repr(float(at))
        if self._http is None:
            self._http = httpx.Client()
        response = self._http.get(f"{self.url}/api/v1/query", params=params, timeout=timeout)
        try:
            body = response.json()
        except ValueError:
            raise PrometheusServerError(
                f"query {promql!r}: answer {response.status_code} is not JSON"
            ) from None
        if body.get("status") != "success":
            raise PrometheusServerError(
                f"query {promql!r} failed: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[Any]], bool] | None = None,
        *,
        timeout: float = 30.0,
        interval: float = 0.25,
    ) -> list[Any]:
        """Poll an instant query until `predicate(result)` holds; returns that result.

        The default predicate is "the result is not empty". Raises TimeoutError with the
        last result seen once `timeout` seconds have passed.
        """
        check = predicate or bool
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            # A bad query fails at once; only transport hiccups are retried.
            with contextlib.suppress(httpx.HTTPError):
                last = self.query(promql)["result"]
                if check(last):
                    return list(last)
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{promql!r} did not satisfy the condition within {timeout}s; last: {last!r}"
                )
            if not self.running:
                raise PrometheusServerError(f"prometheus exited:\n{self.log_tail()}")
            time.sleep(interval)
