"""`rollouts replay`: what a Rollout's analysis would have decided over a past window.

Reads a Rollout and the (Cluster)AnalysisTemplates its analyses reference from files, walks
the strategy on a virtual clock against a real Prometheus's history
(`analysis.replay.replay` with `providers.prometheus_past.PastPrometheus`) and prints every
step, measurement and run verdict, then the decision and when it came.

Exit codes: 0 promoted, 1 aborted or unusable input (files, times, flags; one line on
stderr), 2 paused (Inconclusive) or undecided by `--to`, 3 an internal error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO

from pydantic import ValidationError

from rollouts.analysis.providers.prometheus_past import PastPrometheus
from rollouts.analysis.replay import Replay, ReplayInput, replay
from rollouts.cli.manifests import read_documents
from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import (
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    load_analysis_template,
    load_cluster_analysis_template,
)
from rollouts.models.base import parse_duration
from rollouts.models.rollout import parse_spec
from rollouts.models.wire import parse_time

EXIT_CODES: Final = {"promoted": 0, "aborted": 1, "paused": 2, "undecided": 2}
EXIT_INPUT: Final = 1


class ReplayInputError(Exception):
    """Input the replay cannot use; the message says which and why."""


def parse_moment(text: str, what: str) -> datetime:
    """An RFC 3339 timestamp (`2025-01-01T10:00:00Z`) or unix seconds."""
    try:
        seconds = float(text)
    except ValueError:
        moment = parse_time(text)
        if moment is None:
            raise ReplayInputError(
                f"{what} {text!r} is not an RFC 3339 timestamp (e.g. 2025-01-01T10:00:00Z) "
                "or unix seconds"
            ) from None
        return moment
    if not math.isfinite(seconds):
        raise ReplayInputError(f"{what} {text!r} is not a time")
    return datetime.fromtimestamp(seconds, tz=UTC)


def load_input(
    paths: Sequence[Path], canary_hash: str | None, stable_hash: str | None
) -> ReplayInput:
    """The Rollout (exactly one) and every template in the files."""
    rollouts: list[Mapping[str, Any]] = []
    templates: dict[str, AnalysisTemplate] = {}
    cluster: dict[str, ClusterAnalysisTemplate] = {}
    for path in paths:
        docs, problems = read_documents(path)
        if problems:
            raise ReplayInputError(str(problems[0]))
        for doc in docs:
            kind = doc.body.get("kind")
            name = str((doc.body.get("metadata") or {}).get("name") or "")
            try:
                if kind == "Rollout":
                    rollouts.append(doc.body)
                elif kind == "AnalysisTemplate":
                    templates[name] = load_analysis_template(doc.body)
                elif kind == "ClusterAnalysisTemplate":
                    cluster[name] = load_cluster_analysis_template(doc.body)
            except InvalidSpecError as exc:
                raise ReplayInputError(
                    f"{doc.file}:doc {doc.index}: {kind} {name}: {exc}"
                ) from None
    if len(rollouts) != 1:
        raise ReplayInputError(f"expected exactly one Rollout in the files, found {len(rollouts)}")
    body = rollouts[0]
    try:
        spec = parse_spec(body.get("spec") or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ReplayInputError(f"Rollout spec.{where}: {first['msg']}") from None
    status = body.get("status") or {}
    canary = canary_hash or status.get("currentPodHash")
    stable = stable_hash or status.get("stableRS")
    wanted = _hash_values(body.get("spec"))
    for value, given, flag in (("Latest", canary, "--canary-hash"),
                               ("Stable", stable, "--stable-hash")):  # fmt: skip
        if value in wanted and not given:
            raise ReplayInputError(
                f"the Rollout's analysis args use podTemplateHashValue {value} and the file has "
                f"no status to read it from: pass {flag}"
            )
    return ReplayInput(
        rollout=body,
        spec=spec,
        templates=templates,
        cluster_templates=cluster,
        canary_hash=str(canary or "replay"),  # names the runs only, when no arg needs it
        stable_hash=str(stable) if stable else None,
    )


def _hash_values(value: Any) -> set[str]:
    """Every `podTemplateHashValue` the Rollout's spec asks for."""
    if isinstance(value, Mapping):
        found = {str(value["podTemplateHashValue"])} if "podTemplateHashValue" in value else set()
        for item in value.values():
            found |= _hash_values(item)
        return found
    if isinstance(value, list):
        return set().union(*(_hash_values(item) for item in value)) if value else set()
    return set()


def _clock(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


def render_text(result: Replay, out: TextIO) -> None:
    for event in result.events:
        if event.kind == "decision":
            continue  # the summary line below says it
        indent = "    " if event.kind == "measurement" else ""
        label = f"[{event.analysis}] " if event.analysis and event.kind == "measurement" else ""
        out.write(f"{_clock(event.at)}  {indent}{label}{event.message}\n")
    where = f" at step {result.step}" if result.step is not None else ""
    when = f" at {_clock(result.at)}" if result.at else ""
    out.write(f"\n{result.outcome.upper()}{where}{when}: {result.message}\n")


def replay_command(
    paths: Sequence[Path],
    *,
    start: str,
    end: str,
    step: str,
    prometheus_address: str | None,
    canary_hash: str | None,
    stable_hash: str | None,
    output_json: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    try:
        began = parse_moment(start, "--from")
        ended = parse_moment(end, "--to")
        try:
            seconds = parse_duration(step)
        except (ValueError, TypeError):
            raise ReplayInputError(f"--step {step!r} is not a duration (e.g. 30s, 1m)") from None
        if seconds <= 0:
            raise ReplayInputError("--step must be positive")
        if ended < began:
            raise ReplayInputError("--to is before --from")
        if prometheus_address is not None and not prometheus_address.startswith(
            ("http://", "https://")
        ):
            raise ReplayInputError(f"--prometheus-address {prometheus_address!r} is not an "
                                   "http(s) URL")  # fmt: skip
        given = load_input(paths, canary_hash, stable_hash)
        result = replay(
            given,
            PastPrometheus(prometheus_address).measure,
            start=began,
            end=ended,
            step=timedelta(seconds=seconds),
        )
    except (ReplayInputError, ValueError) as exc:
        err.write(f"error: {exc}\n")
        return EXIT_INPUT
    if output_json:
        out.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        render_text(result, out)
    return EXIT_CODES[result.outcome]
