"""Build an AnalysisRun manifest from a Rollout's analysis reference (pure: no I/O).

The caller (the executor) fetches the templates the reference names and hands them in as
mappings; everything here is a function of its arguments, so the same Rollout, hashes and
templates always give the same manifest (and the same run name).

Argo Rollouts semantics kept (analysisutil.NewAnalysisRunFromTemplates, FlattenTemplates,
MergeArgs, ResolveArgs):
- templates are flattened: metrics, args, dryRun and measurementRetention of every
  template (and of the templates they include through `spec.templates`) are merged;
- the same metric name in two templates is an error;
- the same argument in two templates is one argument; two different values are an error,
  a value wins over no value;
- the Rollout's args override the templates' defaults (value or valueFrom); Rollout args
  the templates do not declare are ignored;
- an argument left without a value is an error naming it.

Ours:
- `{{args.NAME}}` and `{{ args.NAME }}` are substituted in every string of the metric specs
  here, except for arguments backed by a Secret (`valueFrom.secretKeyRef`): those stay
  placeholders and stay references in `spec.args`, and the runner substitutes them at
  measurement time, so a secret never appears in the AnalysisRun in clear text.
- A template included twice through different paths is included once; a cycle is an error
  naming it (`a -> b -> a`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import (
    AnalysisRunSpec,
    AnalysisTemplate,
    AnalysisTemplateSpec,
    Argument,
    ClusterAnalysisTemplate,
    load,
)
from rollouts.models.metric_rules import DryRun, MeasurementRetention, unmatched_rule
from rollouts.models.rollout import Rollout
from rollouts.models.rollout_analysis import AnalysisRunArgument, RolloutAnalysis
from rollouts.models.wire import ANALYSIS_KIND_LABEL as ANALYSIS_KIND_LABEL
from rollouts.models.wire import ANALYSIS_STEP_LABEL as ANALYSIS_STEP_LABEL
from rollouts.models.wire import API_VERSION, POD_TEMPLATE_HASH_LABEL, rollout_owner_reference
from rollouts.models.wire import ROLLOUT_LABEL as ROLLOUT_LABEL
from rollouts.planner.types import AnalysisKind

ANALYSIS_KINDS: Final = ("step", "background", "prePromotion", "postPromotion")

MAX_NAME_LENGTH: Final = 63

# Metric fields the run's schedule and verdict read before any measurement: their arguments
# must be plain values, known when the AnalysisRun is built.
SCHEDULE_FIELDS: Final = (
    "interval",
    "initialDelay",
    "count",
    "failureLimit",
    "inconclusiveLimit",
    "consecutiveErrorLimit",
    "consecutiveSuccessLimit",
)

ARG_PLACEHOLDER: Final = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.\-]+)\s*\}\}")


# ---------------------------------------------------------------------------------------------
# Substitution (shared with the runner, which resolves secret-backed args at measurement time)


def substitute_args(
    value: Any, args: Mapping[str, str], *, on_missing: Callable[[str], None] | None = None
) -> Any:
    """`value` with `{{args.NAME}}` replaced in every string (dict keys are left alone).

    A placeholder whose name is not in `args` is kept as written; `on_missing` is called
    with its name (to collect or reject it).
    """
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in args:
                return args[name]
            if on_missing is not None:
                on_missing(name)
            return match.group(0)

        return ARG_PLACEHOLDER.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: substitute_args(v, args, on_missing=on_missing) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute_args(v, args, on_missing=on_missing) for v in value]
    return value


def placeholders(value: Any) -> set[str]:
    """Names of every `{{args.NAME}}` left in `value`."""
    found: set[str] = set()
    substitute_args(value, {}, on_missing=found.add)
    return found


_PATH_PART: Final = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def args_behind(original: Any, field: str, message: str = "") -> list[str]:
    """The arguments whose substitution produced the value at `field` (a path such as
    `metrics[0].interval`, as `InvalidSpecError.field` names it) of `original`, the data
    before substitution: so that an error after substitution can name the argument.

    When the path stops at an object (a model-level rule such as `count > 1 needs an
    interval`), only fields of that object named in `message` are considered.
    """
    node: Any = original
    for name, index in _PATH_PART.findall(field):
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                return []
            node = node[int(index)]
        elif isinstance(node, Mapping) and name in node:
            node = node[name]
        else:
            break
    if isinstance(node, Mapping):
        node = [v for k, v in node.items() if isinstance(v, str) and str(k) in message]
    return sorted(placeholders(node))


def naming_args(original: Any, field: str, message: str) -> str:
    """`message` followed by the argument(s) that produced the bad value, if any."""
    names = args_behind(original, field, message)
    if not names:
        return message
    return message + " (from " + ", ".join(f"{{{{args.{n}}}}}" for n in names) + ")"


# ---------------------------------------------------------------------------------------------
# Naming


_INVALID_NAME_CHARS: Final = re.compile(r"[^a-z0-9-]+")


def dns_label(text: str, limit: int = MAX_NAME_LENGTH) -> str:
    """`text` as a DNS-1123 label of at most `limit` characters.

    Lowercased, invalid characters turned into '-'. When it had to be shortened, a digest of
    the full text is kept at the end so that two long names stay distinct.
    """
    clean = _INVALID_NAME_CHARS.sub("-", text.lower()).strip("-") or "x"
    if len(clean) <= limit:
        return clean
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    head = clean[: limit - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


def analysis_run_name(
    rollout_name: str,
    pod_hash: str,
    kind: AnalysisKind,
    step_index: int | None = None,
    attempt: int = 0,
) -> str:
    """`{rollout}-{podhash}-{kind}[-{stepIndex}][-r{attempt}]`, at most 63 characters.

    The kind is lowercased (object names are DNS labels). Only the Rollout's part is
    shortened (with a digest of it), so the hash, kind and step always stay readable.
    `attempt` > 0 makes a fresh name for a retry after a finished run of the same slot.
    """
    suffix = f"-{pod_hash}-{kind.lower()}"
    if step_index is not None:
        suffix += f"-{step_index}"
    if attempt > 0:
        suffix += f"-r{attempt}"
    suffix = _INVALID_NAME_CHARS.sub("-", suffix.lower())
    room = MAX_NAME_LENGTH - len(suffix)
    if room < 10:  # an absurdly long pod hash: shorten the whole thing
        return dns_label(rollout_name + suffix)
    return dns_label(rollout_name, room) + suffix


# ---------------------------------------------------------------------------------------------
# Template resolution


@dataclass(frozen=True)
class _Ref:
    name: str
    cluster: bool

    def __str__(self) -> str:
        return f"ClusterAnalysisTemplate/{self.name}" if self.cluster else self.name


def _flatten(
    refs: Sequence[tuple[_Ref, str]],
    templates: Mapping[str, AnalysisTemplate],
    cluster_templates: Mapping[str, ClusterAnalysisTemplate],
) -> list[tuple[_Ref, AnalysisTemplateSpec]]:
    """Every template reachable from `refs`, depth-first, each once; cycles raise."""
    out: list[tuple[_Ref, AnalysisTemplateSpec]] = []
    seen: set[_Ref] = set()

    def visit(ref: _Ref, field: str, path: tuple[_Ref, ...]) -> None:
        if ref in path:
            cycle = " -> ".join(str(r) for r in (*path[path.index(ref) :], ref))
            raise InvalidSpecError(field, f"templates include each other in a cycle: {cycle}")
        if ref in seen:
            return
        found: AnalysisTemplate | ClusterAnalysisTemplate | None = (
            cluster_templates.get(ref.name) if ref.cluster else templates.get(ref.name)
        )
        if found is None:
            kind = "ClusterAnalysisTemplate" if ref.cluster else "AnalysisTemplate"
            raise InvalidSpecError(field, f"{kind} {ref.name!r} not found")
        seen.add(ref)
        out.append((ref, found.spec))
        for i, inner in enumerate(found.spec.templates or ()):
            visit(
                _Ref(inner.template_name, bool(inner.cluster_scope)),
                f"{ref}.spec.templates[{i}]",
                (*path, ref),
            )

    for ref, field in refs:
        visit(ref, field, ())
    return out


def _merge_template_args(
    specs: Sequence[tuple[_Ref, AnalysisTemplateSpec]],
) -> dict[str, Argument]:
    merged: dict[str, Argument] = {}
    for ref, spec in specs:
        for arg in spec.args or ():
            stored = merged.get(arg.name)
            if stored is None:
                merged[arg.name] = arg
                continue
            if arg.value is not None and stored.value is not None and arg.value != stored.value:
                raise InvalidSpecError(
                    f"{ref}.spec.args",
                    f"argument {arg.name!r} is given different values by several templates: "
                    f"{stored.value!r}, {arg.value!r}",
                )
            if stored.value is None and stored.value_from is None:
                merged[arg.name] = arg
    return merged


def _field_value(rollout: Mapping[str, Any], path: str) -> str | None:
    """The value at a Kubernetes fieldPath of the Rollout (the subset Argo supports)."""
    metadata = rollout.get("metadata") or {}
    match = re.fullmatch(r"metadata\.(labels|annotations)\[['\"]([^'\"]+)['\"]\]", path.strip())
    if match is not None:
        values = metadata.get(match.group(1)) or {}
        found = values.get(match.group(2))
        return None if found is None else str(found)
    if path.strip() in ("metadata.name", "metadata.namespace", "metadata.uid"):
        found = metadata.get(path.strip().removeprefix("metadata."))
        return None if found in (None, "") else str(found)
    raise ValueError(
        f"unsupported fieldPath {path!r}: use metadata.name, metadata.namespace, metadata.uid, "
        "metadata.labels['key'] or metadata.annotations['key']"
    )


def _resolve_value(
    arg: Argument | AnalysisRunArgument,
    field: str,
    rollout: Mapping[str, Any],
    hashes: Mapping[str, str | None],
) -> str | None:
    """The plain value of an argument, or None for a Secret-backed one (resolved later)."""
    if arg.value is not None:
        return arg.value
    source = arg.value_from
    if source is None:
        raise InvalidSpecError(field, f"argument {arg.name!r} needs a value and none was given")
    if getattr(source, "secret_key_ref", None) is not None:
        return None
    if source.pod_template_hash_value is not None:
        found = hashes.get(source.pod_template_hash_value)
        if not found:
            raise InvalidSpecError(
                field,
                f"argument {arg.name!r}: no {source.pod_template_hash_value} pod template hash",
            )
        return found
    assert source.field_ref is not None
    try:
        value = _field_value(rollout, source.field_ref.field_path)
    except ValueError as exc:
        raise InvalidSpecError(field, f"argument {arg.name!r}: {exc}") from None
    if value is None:
        raise InvalidSpecError(
            field,
            f"argument {arg.name!r}: the Rollout has nothing at {source.field_ref.field_path}",
        )
    return value


def _declared_by(specs: Sequence[tuple[_Ref, AnalysisTemplateSpec]], name: str) -> str:
    """The first template declaring argument `name` (for error messages)."""
    for ref, spec in specs:
        if any(a.name == name for a in spec.args or ()):
            return str(ref)
    return "templates"


def _merge_named(
    entries: Sequence[Mapping[str, Any]], field: str, *, override: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """dryRun / measurementRetention entries by metricName: templates must agree with each
    other; the Rollout's own entries (`override`) replace theirs and come last, so that they
    also win where several rules match one metric (the last matching rule wins)."""
    merged: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = str(entry.get("metricName"))
        if name in merged and merged[name] != dict(entry):
            raise InvalidSpecError(
                field, f"metric {name!r} is given conflicting settings by several templates"
            )
        merged[name] = dict(entry)
    for entry in override:
        merged.pop(str(entry.get("metricName")), None)
    return [*merged.values(), *(dict(entry) for entry in override)]


def _check_rules(field: str, key: str, merged: Sequence[Mapping[str, Any]],
                 own: Sequence[DryRun | MeasurementRetention], names: Sequence[str]) -> None:
    """A dryRun / measurementRetention rule that matches no metric (Argo refuses the run),
    named where it was written: the Rollout's `field.key[i]`, or the templates."""
    for entry in merged:
        pattern = str(entry.get("metricName"))
        if unmatched_rule(key, [pattern], names) is None:
            continue
        index = next((i for i, rule in enumerate(own) if rule.metric_name == pattern), None)
        where = f"{field}.templates" if index is None else f"{field}.{key}[{index}].metricName"
        raise InvalidSpecError(where, f"{key} rule {pattern!r} matches no metric of the "
                               f"templates (metrics: {', '.join(names)})")


def build_analysis_run(
    rollout: Rollout | Mapping[str, Any],
    analysis: RolloutAnalysis,
    *,
    kind: AnalysisKind,
    pod_hash: str,
    templates: Mapping[str, AnalysisTemplate],
    cluster_templates: Mapping[str, ClusterAnalysisTemplate],
    stable_hash: str | None = None,
    latest_hash: str | None = None,
    step_index: int | None = None,
    attempt: int = 0,
    field: str = "analysis",
) -> dict[str, Any]:
    """The AnalysisRun manifest (a dict, camelCase) for one analysis of one revision.

    `pod_hash` is the revision being judged; `latest_hash` (default `pod_hash`) and
    `stable_hash` answer `valueFrom.podTemplateHashValue`. `templates` /
    `cluster_templates` map names to the namespaced / cluster templates available. `field`
    is where `analysis` sits in the Rollout, for error messages (e.g.
    `spec.strategy.canary.steps[2].analysis`).

    Raises InvalidSpecError naming the field for anything that cannot make a valid run.
    """
    if kind not in ANALYSIS_KINDS:
        raise InvalidSpecError(field, f"unknown analysis kind {kind!r}")
    body: Mapping[str, Any] = rollout.to_wire() if isinstance(rollout, Rollout) else rollout
    metadata = body.get("metadata") or {}
    rollout_name = str(metadata.get("name") or "")
    namespace = str(metadata.get("namespace") or "default")
    if not rollout_name:
        raise InvalidSpecError("metadata.name", "the Rollout has no name")

    specs = _flatten(
        [
            (_Ref(ref.template_name, bool(ref.cluster_scope)), f"{field}.templates[{i}]")
            for i, ref in enumerate(analysis.templates)
        ],
        templates,
        cluster_templates,
    )

    # Metrics: names must be unique across every template.
    metrics: list[dict[str, Any]] = []
    owner: dict[str, _Ref] = {}
    for ref, template_spec in specs:
        for metric in template_spec.metrics:
            if metric.name in owner:
                raise InvalidSpecError(
                    f"{ref}.spec.metrics",
                    f"metric {metric.name!r} is defined twice (in {owner[metric.name]} and {ref})",
                )
            owner[metric.name] = ref
            metrics.append(metric.to_wire())

    # Args: template defaults, overridden by the Rollout's.
    args = _merge_template_args(specs)
    hashes = {"Stable": stable_hash, "Latest": latest_hash or pod_hash}
    values: dict[str, str] = {}
    secret_args: dict[str, dict[str, Any]] = {}
    given = {a.name: (i, a) for i, a in enumerate(analysis.args or ())}
    for name, template_arg in args.items():
        chosen: Argument | AnalysisRunArgument = template_arg
        arg_field = f"{_declared_by(specs, name)}.spec.args[{name}]"
        if name in given:
            index, rollout_arg = given[name]
            if rollout_arg.value is not None or rollout_arg.value_from is not None:
                chosen = rollout_arg
                arg_field = f"{field}.args[{index}]"
        value = _resolve_value(chosen, arg_field, body, hashes)
        if value is None:
            assert isinstance(chosen, Argument) and chosen.value_from is not None
            secret_args[name] = chosen.to_wire()
        else:
            values[name] = value

    # Substitute plain args; secret-backed placeholders stay for the runner.
    unknown: list[str] = []

    def missing(arg_name: str) -> None:
        if arg_name not in secret_args and arg_name not in unknown:
            unknown.append(arg_name)

    unsubstituted = {"metrics": metrics}
    metrics = substitute_args(metrics, values, on_missing=missing)
    if unknown:
        raise InvalidSpecError(
            f"{field}.templates",
            "metrics use undeclared arguments: " + ", ".join(f"{{{{args.{n}}}}}" for n in unknown),
        )
    for built in metrics:
        for key in SCHEDULE_FIELDS:
            left = placeholders(built.get(key))
            if left:
                raise InvalidSpecError(
                    f"{field}.templates",
                    f"metric {built.get('name')!r}: {key} cannot come from a Secret-backed "
                    "argument: " + ", ".join(f"{{{{args.{n}}}}}" for n in sorted(left)),
                )

    run_args: list[dict[str, Any]] = []
    for name in args:
        if name in secret_args:
            run_args.append(secret_args[name])
        else:
            run_args.append({"name": name, "value": values[name]})

    dry_run = _merge_named(
        [d.to_wire() for _, s in specs for d in s.dry_run or ()],
        f"{field}.templates",
        override=[d.to_wire() for d in analysis.dry_run or ()],
    )
    retention = _merge_named(
        [r.to_wire() for _, s in specs for r in s.measurement_retention or ()],
        f"{field}.templates",
        override=[r.to_wire() for r in analysis.measurement_retention or ()],
    )

    names = [str(m.get("name")) for m in metrics]
    _check_rules(field, "dryRun", dry_run, analysis.dry_run or (), names)
    _check_rules(field, "measurementRetention", retention,
                 analysis.measurement_retention or (), names)

    run_spec: dict[str, Any] = {"metrics": metrics}
    if run_args:
        run_spec["args"] = run_args
    if dry_run:
        run_spec["dryRun"] = dry_run
    if retention:
        run_spec["measurementRetention"] = retention
    # Validate what we built (limits given as placeholders must now be integers, ...).
    try:
        run_spec = load(AnalysisRunSpec, run_spec).to_wire()
    except InvalidSpecError as exc:
        raise InvalidSpecError(
            f"{field}.templates",
            f"the AnalysisRun built from the templates is invalid at spec.{exc.field}: "
            + naming_args(unsubstituted, exc.field, exc.message),
        ) from None

    labels: dict[str, str] = {
        ROLLOUT_LABEL: rollout_name,
        POD_TEMPLATE_HASH_LABEL: pod_hash,
        ANALYSIS_KIND_LABEL: kind,
    }
    if step_index is not None:
        labels[ANALYSIS_STEP_LABEL] = str(step_index)
    owner_ref = rollout_owner_reference(rollout_name, str(metadata.get("uid") or ""))
    return {
        "apiVersion": API_VERSION,
        "kind": "AnalysisRun",
        "metadata": {
            "name": analysis_run_name(rollout_name, pod_hash, kind, step_index, attempt),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_ref],
        },
        "spec": run_spec,
    }
