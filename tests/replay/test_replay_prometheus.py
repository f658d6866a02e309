"""`rollouts replay` against a real Prometheus whose history was backfilled with promtool.

Three releases of one app, told apart by their pod-template-hash, with the stable revision
(`stable1`) serving alongside each:

- `good1`: 1% errors, like the stable revision, all along;
- `bad1`: like the stable revision for its first 3 minutes, then 5% errors (a regression
  that shows up under load): the comparison's sequential test catches it at the second
  look whose window holds bad minutes (shown at the first; beyond any minute-to-minute
  swing, as rollouts/analysis/consistency.py asks, at the second: its checks restart, so
  the good looks before do not dilute them), while a 95% success-rate threshold
  (background analysis) would have let it through;
- `broken1`: 20% errors from the start: the blue-green pre-promotion threshold fails it.

Counters are straight lines per segment, so `increase(...[60s])` is exact and every
decision below is deterministic.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from rollouts.analysis.providers.prometheus_past import PastPrometheus
from rollouts.cli.replay import replay_command
from rollouts.models.analysis import load_analysis_template
from rollouts.sandbox.prometheus import PrometheusServer, Series, render_openmetrics
from tests.analysis.conftest import require_binaries

pytestmark = pytest.mark.prometheus

RELEASE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
T0 = int(RELEASE.timestamp())
SCRAPE = 15
HISTORY_START = T0 - 30 * 60
HISTORY_END = T0 + 40 * 60
CANARY_RPS = 20.0  # the canary's share at setWeight 20 of 100 req/s
STABLE_RPS = 80.0


def _counter(segments: list[tuple[int, float]], start: int, end: int) -> list[tuple[float, float]]:
    """A counter growing at `rate` from each segment's start (unix s) until the next one."""
    samples = []
    value = 0.0
    for ts in range(start, end + 1, SCRAPE):
        samples.append((float(ts), value))
        rate = next(r for since, r in reversed(segments) if ts >= since)
        value += rate * SCRAPE
    return samples


def _side(
    hash_: str, error_segments: list[tuple[int, float]], rps: float, start: int
) -> list[Series]:
    ok = [(since, rps * (1 - share)) for since, share in error_segments]
    errors = [(since, rps * share) for since, share in error_segments]
    labels = {"app": "shop", "rollouts_pod_template_hash": hash_}
    return [
        Series("http_requests_total", {**labels, "code": "200"}, _counter(ok, start, HISTORY_END)),
        Series(
            "http_requests_total", {**labels, "code": "500"}, _counter(errors, start, HISTORY_END)
        ),
    ]


def history() -> list[Series]:
    series = _side("stable1", [(HISTORY_START, 0.01)], STABLE_RPS, HISTORY_START)
    series += _side("good1", [(T0, 0.01)], CANARY_RPS, T0)
    series += _side("bad1", [(T0, 0.01), (T0 + 180, 0.05)], CANARY_RPS, T0)
    series += _side("broken1", [(T0, 0.20)], CANARY_RPS, T0)
    return series


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    require_binaries()
    server = PrometheusServer()
    try:
        server.load_openmetrics(render_openmetrics(history()))
        server.start()
        yield server
    finally:
        server.stop()


COMPARE_TEMPLATE = """
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: errors-vs-stable}
spec:
  args:
    - name: canary-hash
    - name: stable-hash
  metrics:
    - name: errors
      interval: 1m
      count: 5
      compare:
        test: sequentialCounts
        canary: "{{args.canary-hash}}"
        baseline: "{{args.stable-hash}}"
        totalQuery: |
          sum(increase(http_requests_total{app="shop",
                       rollouts_pod_template_hash="{{role}}"}[{{interval}}]))
      provider:
        prometheus:
          address: http://prometheus.monitoring:9090
          query: |
            sum(increase(http_requests_total{app="shop",code=~"5..",
                         rollouts_pod_template_hash="{{role}}"}[{{interval}}]))
"""

THRESHOLD_TEMPLATE = """
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate}
spec:
  args:
    - name: hash
  metrics:
    - name: success-rate
      interval: 1m
      count: 3
      initialDelay: 1m  # the new revision has no traffic history at its start
      successCondition: len(result) > 0 && result[0] >= 0.95
      failureCondition: len(result) > 0 && result[0] < 0.95
      provider:
        prometheus:
          address: http://prometheus.monitoring:9090
          query: |
            sum(rate(http_requests_total{app="shop",code!~"5..",
                     rollouts_pod_template_hash="{{args.hash}}"}[1m]))
            / sum(rate(http_requests_total{app="shop",
                       rollouts_pod_template_hash="{{args.hash}}"}[1m]))
"""

ROLLOUT_HEAD = """
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {name: shop, namespace: default}
spec:
  replicas: 5
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: app, image: shop:2}]}
  strategy:
"""

CANARY_ROLLOUT = (
    ROLLOUT_HEAD
    + """    canary:
      analysis:
        templates: [{templateName: success-rate}]
        args:
          - name: hash
            valueFrom: {podTemplateHashValue: Latest}
      steps:
        - setWeight: 20
        - pause: {duration: 2m}
        - analysis:
            templates: [{templateName: errors-vs-stable}]
            args:
              - name: canary-hash
                valueFrom: {podTemplateHashValue: Latest}
              - name: stable-hash
                valueFrom: {podTemplateHashValue: Stable}
        - setWeight: 50
        - pause: {duration: 2m}
"""
)

BLUE_GREEN_ROLLOUT = (
    ROLLOUT_HEAD
    + """    blueGreen:
      activeService: shop
      previewService: shop-preview
      prePromotionAnalysis:
        templates: [{templateName: success-rate}]
        args:
          - name: hash
            valueFrom: {podTemplateHashValue: Latest}
"""
)


def _files(tmp_path: Path, rollout: str) -> list[Path]:
    (tmp_path / "rollout.yaml").write_text(rollout)
    (tmp_path / "templates.yaml").write_text(COMPARE_TEMPLATE + "---" + THRESHOLD_TEMPLATE)
    return [tmp_path / "rollout.yaml", tmp_path / "templates.yaml"]


def run(
    prometheus: PrometheusServer,
    files: list[Path],
    canary: str,
    *,
    minutes: int = 30,
    output_json: bool = True,
    step: str = "1m",
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = replay_command(
        files,
        start=RELEASE.isoformat(),
        end=(RELEASE + timedelta(minutes=minutes)).isoformat(),
        step=step,
        prometheus_address=prometheus.url,
        canary_hash=canary,
        stable_hash="stable1",
        output_json=output_json,
        out=out,
        err=err,
    )
    return code, out.getvalue(), err.getvalue()


def _at(minutes: int) -> str:
    return (RELEASE + timedelta(minutes=minutes)).isoformat()


def test_a_good_release_promotes_after_the_last_step(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    code, out, err = run(prometheus, _files(tmp_path, CANARY_ROLLOUT), "good1")
    assert err == ""
    result = json.loads(out)
    assert (code, result["outcome"]) == (0, "promoted")
    # pause 2m, analysis of 5 looks at 2..6m (the 5th passes), setWeight 50, pause 2m.
    assert result["at"] == _at(8)
    errors = [e for e in result["events"] if e.get("metric") == "errors"]
    assert [e["at"] for e in errors] == [_at(m) for m in range(2, 7)]
    assert [e["evidence"]["decision"] for e in errors] == ["continue"] * 4 + ["pass"]
    # Exact counts from the history: 1200 canary and 4800 baseline requests per minute.
    assert errors[0]["evidence"]["canary"] == pytest.approx(1200)
    assert errors[0]["evidence"]["baseline"] == pytest.approx(4800)
    background = [e for e in result["events"] if e.get("metric") == "success-rate"]
    assert background and all(e["phase"] == "Successful" for e in background)
    assert all(e["value"] == "[0.99]" for e in background[1:])


def test_a_bad_release_aborts_at_the_analysis_step_when_the_errors_start(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    code, out, _ = run(prometheus, _files(tmp_path, CANARY_ROLLOUT), "bad1")
    result = json.loads(out)
    assert (code, result["outcome"], result["step"]) == (1, "aborted", 2)
    # Errors start at 3m; the look at 4m covers 3m..4m and shows them. The checks agree
    # from the look at 5m (they count from the onset, not the run's start), but the count
    # e-value is divided by the dispersion of the windows before the newest, which the
    # onset itself raises (good and bad minutes, one ratio fitted): the last look (6m)
    # holds the evidence as not yet beyond the dispersion, the metric takes an extra look,
    # and that fails (7m; at 5m before the dispersion estimate of round 5).
    assert result["at"] == _at(7)
    errors = [e for e in result["events"] if e.get("metric") == "errors"]
    assert [(e["at"], e["phase"]) for e in errors] == [
        (_at(2), "Successful"),
        (_at(3), "Successful"),
        (_at(4), "Successful"),
        (_at(5), "Successful"),
        (_at(6), "Inconclusive"),
        (_at(7), "Failed"),
    ]
    # The sequential test's totals since the run began: 12 + 12 + 4 x 60 (5% of 1200)
    # canary errors against 6 x 48 (1% of 4800) baseline errors.
    assert errors[-1]["evidence"]["canaryErrors"] == pytest.approx(264)
    assert errors[-1]["evidence"]["baselineErrors"] == pytest.approx(288)
    assert "step 2 analysis Failed" in result["message"]
    # The 95% threshold in the background saw 99%, 99%, 95% and never failed.
    background = [e for e in result["events"] if e.get("metric") == "success-rate"]
    assert all(e["phase"] != "Failed" for e in background)
    assert not any(e["kind"] == "step" and e.get("step") == 3 for e in result["events"])


def test_text_output_tells_the_story(prometheus: PrometheusServer, tmp_path: Path) -> None:
    code, out, _ = run(prometheus, _files(tmp_path, CANARY_ROLLOUT), "bad1", output_json=False)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "2025-03-01T12:00:00Z  step 0: setWeight 20"
    assert any(
        line.startswith("2025-03-01T12:07:00Z      [step 2] errors: Failed") for line in lines
    )
    assert lines[-1].startswith("ABORTED at step 2 at 2025-03-01T12:07:00Z: step 2 analysis Failed")


def test_blue_green_pre_promotion_aborts_a_broken_release(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    code, out, _ = run(prometheus, _files(tmp_path, BLUE_GREEN_ROLLOUT), "broken1")
    result = json.loads(out)
    assert (code, result["outcome"], result["at"]) == (1, "aborted", _at(1))
    measured = [e for e in result["events"] if e["kind"] == "measurement"]
    assert [(e["at"], e["phase"], e["value"]) for e in measured] == [(_at(1), "Failed", "[0.8]")]


def test_blue_green_good_release_promotes_after_the_pre_promotion_analysis(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    code, out, _ = run(prometheus, _files(tmp_path, BLUE_GREEN_ROLLOUT), "good1")
    result = json.loads(out)
    # Three looks at 1, 2, 3 minutes (initialDelay 1m), all 99%: promoted at the third.
    assert (code, result["outcome"], result["at"]) == (0, "promoted", _at(3))
    measured = [(e["at"], e["value"]) for e in result["events"] if e["kind"] == "measurement"]
    assert measured == [(_at(m), "[0.99]") for m in (1, 2, 3)]


def test_a_window_too_short_is_undecided(prometheus: PrometheusServer, tmp_path: Path) -> None:
    code, out, _ = run(prometheus, _files(tmp_path, CANARY_ROLLOUT), "good1", minutes=4)
    assert (code, json.loads(out)["outcome"]) == (2, "undecided")


def test_bad_input_exits_1_with_a_message(prometheus: PrometheusServer, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = replay_command(
        _files(tmp_path, CANARY_ROLLOUT),
        start="yesterday",
        end=_at(5),
        step="1m",
        prometheus_address=prometheus.url,
        canary_hash="good1",
        stable_hash="stable1",
        output_json=False,
        out=out,
        err=err,
    )
    assert code == 1
    assert "--from 'yesterday' is not an RFC 3339 timestamp" in err.getvalue()


def test_a_missing_hash_is_asked_for(prometheus: PrometheusServer, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = replay_command(
        _files(tmp_path, CANARY_ROLLOUT), start=_at(0), end=_at(5), step="1m",
        prometheus_address=prometheus.url, canary_hash="good1", stable_hash=None,
        output_json=False, out=out, err=err,
    )  # fmt: skip
    assert code == 1
    assert "podTemplateHashValue Stable" in err.getvalue() and "--stable-hash" in err.getvalue()


def test_past_prometheus_reads_a_range_query_at_a_past_moment(prometheus: PrometheusServer) -> None:
    template = load_analysis_template(
        yaml.safe_load("""
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: r}
spec:
  metrics:
    - name: rate
      provider:
        prometheus:
          query: sum(rate(http_requests_total{rollouts_pod_template_hash="stable1"}[1m]))
          rangeQuery: {start: now-2m, end: now, step: 1m}
""")
    )
    answer = PastPrometheus(prometheus.url).measure(template.spec.metrics[0], RELEASE)
    assert getattr(answer, "kind", None) == "matrix"
    assert getattr(answer, "value", None) == pytest.approx([80.0, 80.0, 80.0])


def test_the_command_is_registered(prometheus: PrometheusServer, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rollouts.cli.main import app

    files = [str(f) for f in _files(tmp_path, CANARY_ROLLOUT)]
    result = CliRunner().invoke(app, [
        "replay", *files, "--from", "2025-03-01T12:00:00Z", "--to", str(T0 + 1800),
        "--prometheus-address", prometheus.url, "--canary-hash", "good1",
        "--stable-hash", "stable1", "-o", "json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcome"] == "promoted"
