"""`dryRun` and `measurementRetention` rules: which metrics of an analysis they apply to.

Argo Rollouts semantics (utils/analysis/helpers.go, GetDryRunMetrics and
GetMeasurementRetentionMetrics):

- `metricName` is a regular expression in Go's syntax, matched anywhere in the metric's name
  (unanchored): `.*` applies to every metric, `rate` to `error-rate` and `success-rate`;
  `^rate$` to the metric named `rate` only. Evaluated with RE2, which is Go's syntax and
  runs in linear time whatever the pattern.
- Each rule must match at least one metric of the run; a rule that matches none makes the
  AnalysisRun invalid (phase Error), e.g. a misspelt metric name is never silently ignored.
- Retention: when several rules match a metric, the last one listed wins.

Ours: `metricName: "*"` (not a valid Go regular expression) is accepted as "every metric",
and for retention it is the fallback used only when no other rule matches.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Final

import re2
from pydantic import AfterValidator, Field

from rollouts.models.base import MAX_INT32, ApiModel

# `metricName: "*"` applies to every metric (ours, beside Argo's `.*`).
WILDCARD: Final = "*"
MAX_PATTERN_CHARS: Final = 1024


def _compiled(pattern: str) -> re2._Regexp:
    options = re2.Options()
    options.log_errors = False  # the reason is raised, not printed to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"invalid regular expression {pattern!r}: {reason}") from None


def _check_pattern(pattern: str) -> str:
    if pattern != WILDCARD:
        _compiled(pattern)
    return pattern


MetricNamePattern = Annotated[
    str,
    Field(min_length=1, max_length=MAX_PATTERN_CHARS,
          description='a regular expression matched anywhere in metric names (".*": all)'),
    AfterValidator(_check_pattern),
]


class DryRun(ApiModel):
    metric_name: MetricNamePattern


class MeasurementRetention(ApiModel):
    metric_name: MetricNamePattern
    limit: int = Field(ge=1, le=MAX_INT32)


def rule_matches(pattern: str, metric_name: str) -> bool:
    """Whether a rule's `metricName` applies to the metric `metric_name`.

    E.g. ".*" and "*" match anything; "rate" matches "error-rate"; "^rate$" only "rate".
    """
    return pattern == WILDCARD or _compiled(pattern).search(metric_name) is not None


def is_dry_run(rules: Sequence[DryRun] | None, metric_name: str) -> bool:
    return any(rule_matches(r.metric_name, metric_name) for r in rules or ())


def retention_limit(rules: Sequence[MeasurementRetention] | None, metric_name: str,
                    default: int) -> int:
    """The last rule matching the metric wins; `"*"` only when nothing else matches.

    E.g. [a: 2, "*": 5] -> a keeps 2, b keeps 5; [a: 2, ".*": 5] -> a keeps 5 (as Argo).
    """
    matching = [r for r in rules or () if r.metric_name != WILDCARD
                and rule_matches(r.metric_name, metric_name)]
    if matching:
        return matching[-1].limit
    fallback = [r for r in rules or () if r.metric_name == WILDCARD]
    return fallback[-1].limit if fallback else default


def unmatched_rule(field: str, patterns: Sequence[str],
                   metric_names: Sequence[str]) -> str | None:
    """Why the first rule that applies to no metric is wrong (None: every rule matches one).

    E.g. ("dryRun", ["^latency$"], ["error-rate"]) -> "dryRun[0].metricName: '^latency$'
    matches no metric (metrics: error-rate)".
    """
    for index, pattern in enumerate(patterns):
        if not any(rule_matches(pattern, name) for name in metric_names):
            return (f"{field}[{index}].metricName: {pattern!r} matches no metric "
                    f"(metrics: {', '.join(metric_names) or 'none'})")
    return None
