"""`rollouts lint`: validate manifests offline, the way the CRDs and the controller would.

Checks, per document: the schema (the same models the CRDs are generated from), rules that
span fields, canary step sanity, analysis condition syntax, the Pod templates of Rollouts and
of job metrics (as the API server would: lint_pods), and across all the files given: that
every AnalysisTemplate a Rollout or an Experiment names (analyses, experiment steps) is
among them and gets every argument it needs.
Problems print as `FILE:doc N: field.path: message`; every problem of a document is
reported, not only the first. Reading (files, directories, `-` for standard input, hostile
YAML) is manifests.py's job.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final, TextIO, TypeVar

from pydantic import ValidationError

from rollouts.analysis.conditions import check_condition
from rollouts.analysis.templates import naming_args, substitute_args
from rollouts.cli.lint_gitops import service_selector_warnings
from rollouts.cli.lint_names import name_problems, spec_label_problems
from rollouts.cli.lint_pods import PodTemplateChecker
from rollouts.cli.manifests import (
    STDIN,
    Document,
    Problem,
    load_documents,
    read_documents,
    read_source,
    yaml_files,
)
from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import (
    AnalysisRun,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    Metric,
    load,
)
from rollouts.models.experiment import experiment_manifest_errors
from rollouts.models.rollout import API_VERSION, rollout_manifest_errors
from rollouts.traffic import manifest_not_run, manifest_problems

__all__ = [
    "ARGO_API_VERSION",
    "KINDS",
    "STDIN",
    "Document",
    "LintReport",
    "Problem",
    "check_experiment",
    "check_rollout",
    "check_template",
    "lint_command",
    "lint_paths",
    "read_documents",
    "yaml_files",
]

ARGO_API_VERSION = "argoproj.io/v1alpha1"
API_GROUP: Final = API_VERSION.split("/")[0]
KINDS = ("Rollout", "AnalysisTemplate", "ClusterAnalysisTemplate", "Experiment", "AnalysisRun")
EXIT_FINDINGS: Final = 1
EXIT_INTERNAL: Final = 3
T = TypeVar("T")
_PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z0-9_.\-]+\s*\}\}")


@dataclass
class _Templates:
    """Templates found in the files: name -> the args they declare without a value."""

    namespaced: dict[str, list[str]] = field(default_factory=dict)
    cluster: dict[str, list[str]] = field(default_factory=dict)
    # (clusterScope, name) -> the template's spec, to check its metrics once args are known
    specs: dict[tuple[bool, str], Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A document lint did not check, and why (printed, so nothing is skipped silently)."""

    file: str
    doc: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:doc {self.doc}: skipped: {self.reason}"


@dataclass
class LintReport:
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    checked: int = 0

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if not p.warning)


def field_path(loc: Sequence[int | str], root: str = "") -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue
        else:
            path += ("." if path else "") + str(part)
    return path or "<root>"


def _validation_problems(doc: Document, exc: ValidationError, root: str = "") -> list[Problem]:
    problems = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            message = "unknown field (not supported by rollouts.dev/v1alpha1)"
        problems.append(Problem(doc.file, doc.index, field_path(err["loc"], root), message))
    return problems


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --- per-kind checks ---------------------------------------------------------------------------


def check_template(doc: Document, pods: PodTemplateChecker | None = None) -> list[Problem]:
    """An AnalysisTemplate, a ClusterAnalysisTemplate or an AnalysisRun (the controller runs
    one created by hand as it runs its own): schema, conditions, job metrics' pods."""
    kind = doc.body.get("kind")
    models: dict[str, type[AnalysisTemplate | ClusterAnalysisTemplate | AnalysisRun]] = {
        "AnalysisTemplate": AnalysisTemplate, "AnalysisRun": AnalysisRun}
    model = models.get(str(kind), ClusterAnalysisTemplate)
    problems: list[Problem] = []
    problems += name_problems(doc)
    if kind == "AnalysisRun":
        # Nothing fills in a run's arguments: each needs its value.
        problems += [Problem(doc.file, doc.index, "spec.args",
                             f'argument "{arg}" has no value (an AnalysisRun gets none from a '
                             "Rollout: give value or valueFrom)")
                     for arg in _required_args(doc.body)]
    try:
        model.model_validate(dict(doc.body))
    except ValidationError as exc:
        problems.extend(_validation_problems(doc, exc))
    for i, metric in enumerate(_list(_dict(doc.body.get("spec")).get("metrics"))):
        problems += _condition_problems(doc, i, _dict(metric))
        job = _dict(_dict(_dict(metric).get("provider")).get("job"))
        if isinstance(job.get("spec"), Mapping):
            base = f"spec.metrics[{i}].provider.job.spec"
            problems += _findings(doc, (pods or PodTemplateChecker()).job_spec(job["spec"], base))
    return problems


def _condition_problems(doc: Document, i: int, metric: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for key in ("successCondition", "failureCondition"):
        text = metric.get(key)
        if not isinstance(text, str):
            continue
        # {{args.x}} is substituted before evaluation: a dummy number keeps the syntax.
        resolved = _PLACEHOLDER.sub("0", text)
        error = check_condition(resolved)
        if error is not None:
            shown = repr(text) if resolved == text else \
                f"{resolved!r} (placeholders replaced by 0)"
            problems.append(Problem(doc.file, doc.index, f"spec.metrics[{i}].{key}",
                                    f"{error.message} at position {error.position} "
                                    f"in {shown}"))
    return problems


def _findings(doc: Document, found: Iterable[tuple[str, str]]) -> list[Problem]:
    return [Problem(doc.file, doc.index, path, message) for path, message in found]


def _name_and_spec(doc: Document, kind: str) -> tuple[list[Problem], Mapping[str, Any] | None]:
    """Problems with metadata.name and the spec's presence; the spec when there is one."""
    problems: list[Problem] = []
    problems += name_problems(doc)
    spec = doc.body.get("spec")
    if not isinstance(spec, Mapping):
        return [*problems, Problem(doc.file, doc.index, "spec", f"{kind} needs a spec")], None
    return problems, spec


def check_rollout(doc: Document, pods: PodTemplateChecker | None = None) -> list[Problem]:
    problems, spec = _name_and_spec(doc, "a Rollout")
    if spec is None:
        return problems
    problems += spec_label_problems(doc)
    errors = rollout_manifest_errors(dict(spec), refuse_not_run=False)
    problems += _findings(doc, [*errors, *manifest_problems(spec)])
    if any(path != "spec" for path, _ in errors):
        # A field error stops the model before its cross-field rules: check those here, so
        # that one run reports every problem of the document.
        problems += _findings(doc, selector_mismatches(spec))
    if isinstance(spec.get("template"), Mapping):
        problems += _findings(doc, (pods or PodTemplateChecker()).template(spec["template"],
                                                                           "spec.template"))
    problems += [Problem(doc.file, doc.index, path, message, warning=True)
                 for path, message in manifest_not_run(spec)]
    problems += _step_warnings(doc, spec)
    return problems


def check_experiment(doc: Document, pods: PodTemplateChecker | None = None) -> list[Problem]:
    """The schema (templates, analyses, duration...) and every template's Pod template."""
    problems, spec = _name_and_spec(doc, "an Experiment")
    if spec is None:
        return problems
    problems += spec_label_problems(doc)
    problems += _findings(doc, experiment_manifest_errors(dict(spec)))
    checker = pods or PodTemplateChecker()
    for i, template in enumerate(_list(spec.get("templates"))):
        pod = _dict(template).get("template")
        if isinstance(pod, Mapping):
            problems += _findings(doc, checker.template(pod, f"spec.templates[{i}].template"))
    return problems


def selector_mismatches(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """matchLabels that the template's labels do not carry (the Rollout would own no pods)."""
    wanted = _dict(_dict(spec.get("selector")).get("matchLabels"))
    labels = _dict(_dict(_dict(spec.get("template")).get("metadata")).get("labels"))
    return [
        ("spec.selector.matchLabels",
         f"{key}={value} does not match spec.template.metadata.labels")
        for key, value in wanted.items() if labels.get(key) != value
    ]


def _step_warnings(doc: Document, spec: Mapping[str, Any]) -> list[Problem]:
    """Legal but probably not meant: weights going down, steps after 100%, double pauses."""
    warnings: list[Problem] = []
    canary = _dict(_dict(spec.get("strategy")).get("canary"))
    steps = _list(canary.get("steps"))
    base = "spec.strategy.canary.steps"
    full = _dict(canary.get("trafficRouting")).get("maxTrafficWeight", 100)
    weight: int | None = None
    previous_pause = False
    for i, step in enumerate(steps):
        step = _dict(step)
        value = step.get("setWeight")
        if isinstance(value, int) and not isinstance(value, bool):
            if weight is not None and value < weight:
                warnings.append(Problem(doc.file, doc.index, f"{base}[{i}].setWeight",
                                        f"weight goes down from {weight} to {value}",
                                        warning=True))
            if weight == full:
                warnings.append(Problem(doc.file, doc.index, f"{base}[{i}]",
                                        f"step after setWeight: {full} (the canary already "
                                        "has all traffic)", warning=True))
            weight = value
        is_pause = "pause" in step
        if is_pause and previous_pause:
            warnings.append(Problem(doc.file, doc.index, f"{base}[{i}].pause",
                                    "two pauses in a row", warning=True))
        previous_pause = is_pause
    if steps and weight is None:
        warnings.append(Problem(doc.file, doc.index, base,
                                "no setWeight step: the canary gets no traffic until every "
                                "step is done", warning=True))
    blue_green = _dict(_dict(spec.get("strategy")).get("blueGreen"))
    if blue_green.get("autoPromotionEnabled") is False and "autoPromotionSeconds" in blue_green:
        warnings.append(Problem(doc.file, doc.index,
                                "spec.strategy.blueGreen.autoPromotionSeconds",
                                "ignored while autoPromotionEnabled is false", warning=True))
    return warnings


# --- references between documents ----------------------------------------------------------


def analysis_refs(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(field path, analysis block) of every analysis a Rollout spec asks for."""
    strategy = _dict(spec.get("strategy"))
    canary = _dict(strategy.get("canary"))
    base = "spec.strategy.canary"
    for i, step in enumerate(_list(canary.get("steps"))):
        if isinstance(_dict(step).get("analysis"), Mapping):
            yield f"{base}.steps[{i}].analysis", _dict(step)["analysis"]
    if isinstance(canary.get("analysis"), Mapping):
        yield f"{base}.analysis", canary["analysis"]
    blue_green = _dict(strategy.get("blueGreen"))
    for key in ("prePromotionAnalysis", "postPromotionAnalysis"):
        if isinstance(blue_green.get(key), Mapping):
            yield f"spec.strategy.blueGreen.{key}", blue_green[key]


def _required_args(body: Mapping[str, Any]) -> list[str]:
    return [
        str(_dict(arg).get("name"))
        for arg in _list(_dict(body.get("spec")).get("args"))
        if _dict(arg).get("name") and "value" not in _dict(arg)
        and "valueFrom" not in _dict(arg)
    ]


def collect_templates(docs: Iterable[Document]) -> _Templates:
    found = _Templates()
    for doc in docs:
        if doc.body.get("apiVersion") != API_VERSION:
            continue
        name = _dict(doc.body.get("metadata")).get("name")
        if not isinstance(name, str):
            continue
        if doc.body.get("kind") == "AnalysisTemplate":
            found.namespaced[name] = _required_args(doc.body)
            found.specs[(False, name)] = _dict(doc.body.get("spec"))
        elif doc.body.get("kind") == "ClusterAnalysisTemplate":
            found.cluster[name] = _required_args(doc.body)
            found.specs[(True, name)] = _dict(doc.body.get("spec"))
    return found


def _plain_args(args: Iterable[Any]) -> dict[str, str]:
    return {
        str(_dict(a).get("name")): str(_dict(a)["value"])
        for a in args
        if isinstance(_dict(a).get("value"), str)
    }


def check_substituted(path: str, spec: Mapping[str, Any], given: Iterable[Any],
                      kind: str, name: str) -> list[str]:
    """Messages for the template's metrics that are invalid once the Rollout's plain
    argument values (and the template's defaults) are substituted; arguments still unknown
    (Secret-backed, fieldRef, pod hashes) leave their metric unchecked."""
    values = {**_plain_args(_list(spec.get("args"))), **_plain_args(given)}
    messages: list[str] = []
    for i, metric in enumerate(_list(spec.get("metrics"))):
        left: list[str] = []
        resolved = substitute_args(metric, values, on_missing=left.append)
        if left or resolved == metric:
            continue
        try:
            load(Metric, resolved)
        except InvalidSpecError as exc:
            messages.append(f'{kind} "{name}" spec.metrics[{i}].{exc.field} with these '
                            f"args: {naming_args(metric, exc.field, exc.message)}")
    return messages


def template_refs(body: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], str,
                                                           list[Any]]]:
    """(path of the reference, the reference, path of its args, the args) of every template
    a Rollout or an Experiment names: a Rollout's analyses (one set of args for all their
    templates) and the analyses of its experiment steps and of an Experiment (args each)."""
    spec = _dict(body.get("spec"))
    experiments: list[tuple[str, Mapping[str, Any]]] = []
    if body.get("kind") == "Experiment":
        experiments.append(("spec", spec))
    else:
        for path, analysis in analysis_refs(spec):
            args = _list(analysis.get("args"))
            for j, ref in enumerate(_list(analysis.get("templates"))):
                yield f"{path}.templates[{j}]", _dict(ref), f"{path}.args", args
        steps = _list(_dict(_dict(spec.get("strategy")).get("canary")).get("steps"))
        experiments += [(f"spec.strategy.canary.steps[{i}].experiment", _dict(step)["experiment"])
                        for i, step in enumerate(steps)
                        if isinstance(_dict(step).get("experiment"), Mapping)]
    for base, experiment in experiments:
        for k, ref in enumerate(_list(experiment.get("analyses"))):
            path = f"{base}.analyses[{k}]"
            yield path, _dict(ref), f"{path}.args", _list(_dict(ref).get("args"))


def check_references(doc: Document, templates: _Templates) -> list[Problem]:
    """Every template a Rollout or an Experiment names is among the files given, gets every
    argument it requires, and has valid metrics once the plain argument values are in."""
    problems: list[Problem] = []
    for path, ref, args_path, args in template_refs(doc.body):
        name = ref.get("templateName")
        if not isinstance(name, str):
            continue
        cluster = bool(ref.get("clusterScope"))
        kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
        table = templates.cluster if cluster else templates.namespaced
        if name not in table:
            problems.append(Problem(doc.file, doc.index, f"{path}.templateName",
                                    f'{kind} "{name}" is not in the files given'))
            continue
        given = {str(_dict(a).get("name")) for a in args}
        for arg in table[name]:
            if arg not in given:
                problems.append(Problem(doc.file, doc.index, args_path,
                                        f'argument "{arg}" required by {kind} "{name}" '
                                        "is not provided"))
        for message in check_substituted(path, templates.specs.get((cluster, name), {}),
                                         args, kind, name):
            problems.append(Problem(doc.file, doc.index, args_path, message))
    return problems


# --- other kinds pointing at a Rollout ------------------------------------------------------

# Where objects of other kinds (HPA, KEDA ScaledObject: scaleTargetRef; VPA: targetRef) name
# the workload they scale or size; a Rollout can be one (it has the scale subresource).
TARGET_REFS: Final = ("scaleTargetRef", "targetRef")


def argo_rollout_refs(body: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(field, reference) of every reference of a document to an Argo Rollout."""
    spec = _dict(body.get("spec"))
    for key in TARGET_REFS:
        ref = _dict(spec.get(key))
        if ref.get("apiVersion") == ARGO_API_VERSION and ref.get("kind") == "Rollout":
            yield f"spec.{key}", ref


def argo_ref_problems(doc: Document) -> list[Problem]:
    """An error on an object that scales Argo's Rollout: after a move to rollouts.dev nothing
    serves it, and the HPA (or ScaledObject, or VPA) silently stops working."""
    return [Problem(doc.file, doc.index, f"{path}.apiVersion",
                    f"names an {ARGO_API_VERSION} Rollout; run `rollouts convert` to point it "
                    f"at the {API_VERSION} one")
            for path, _ in argo_rollout_refs(doc.body)]


# --- the command ---------------------------------------------------------------------------


def classify(doc: Document) -> Problem | Skipped | None:
    """None when lint checks the document; else the error it is, or why it is skipped."""
    api_version = doc.body.get("apiVersion")
    kind = doc.body.get("kind")
    if api_version == ARGO_API_VERSION and kind in KINDS:
        return Problem(doc.file, doc.index, "apiVersion",
                       f"{ARGO_API_VERSION} is Argo Rollouts; run `rollouts convert` to get "
                       f"{API_VERSION}")
    if isinstance(api_version, str) and api_version.split("/")[0] == API_GROUP:
        if api_version != API_VERSION:
            return Problem(doc.file, doc.index, "apiVersion",
                           f"{api_version} is not served; this version of rollouts serves "
                           f"{API_VERSION}")
        if kind not in KINDS:
            return Problem(doc.file, doc.index, "kind",
                           f"unknown kind {kind!r} in {API_VERSION} (expected one of "
                           f"{', '.join(KINDS)})")
        return None
    if not api_version or not kind:
        return Skipped(doc.file, doc.index, "no apiVersion and kind (not a Kubernetes manifest)")
    return Skipped(doc.file, doc.index, f"{kind} {api_version} (not a {API_GROUP} resource)")


def lint_documents(docs: Sequence[Document], report: LintReport | None = None,
                   pods: PodTemplateChecker | None = None) -> list[Problem]:
    report = report if report is not None else LintReport()
    pods = pods or PodTemplateChecker()
    templates = collect_templates(docs)
    problems: list[Problem] = []
    for doc in docs:
        verdict = classify(doc)
        if isinstance(verdict, Skipped):
            report.skipped.append(verdict)
            problems += argo_ref_problems(doc)
            continue
        report.checked += 1
        if isinstance(verdict, Problem):
            problems.append(verdict)
        elif doc.body.get("kind") == "Rollout":
            problems += check_rollout(doc, pods)
            problems += check_references(doc, templates)
        elif doc.body.get("kind") == "Experiment":
            problems += check_experiment(doc, pods)
            problems += check_references(doc, templates)
        else:
            problems += check_template(doc, pods)
    problems += service_selector_warnings(docs)
    report.problems += problems
    return problems


def lint_paths(paths: Iterable[Path], stdin: BinaryIO | None = None) -> LintReport:
    """Problems found (warnings included), documents skipped and how many were checked."""
    report = LintReport()
    docs: list[Document] = []
    for path in yaml_files(paths):
        found, errors, _ = load_documents(read_source(path, stdin))
        docs += found
        report.problems += errors
    lint_documents(docs, report)
    return report


def lint_command(paths: Sequence[Path], out: TextIO, err: TextIO,
                 stdin: BinaryIO | None = None) -> int:
    """Run lint, print its findings; the exit code (0, EXIT_FINDINGS or EXIT_INTERNAL)."""
    report = guarded(lambda: lint_paths(paths, stdin), err, "lint")
    if report is None:
        return EXIT_INTERNAL
    for problem in report.problems:
        out.write(f"{problem}\n")
    for skipped in report.skipped:
        err.write(f"{skipped}\n")
    summary = (f"{report.checked} document(s) checked: {report.errors} error(s), "
               f"{len(report.problems) - report.errors} warning(s)")
    if report.skipped:
        summary += f", {len(report.skipped)} skipped"
    err.write(summary + "\n")
    if report.errors:
        return EXIT_FINDINGS
    if report.checked == 0:
        err.write(f"error: no {API_GROUP} document ({', '.join(KINDS)}) in the input: "
                  "nothing was checked\n")
        return EXIT_FINDINGS
    return 0


def guarded(work: Callable[[], T], err: TextIO, command: str) -> T | None:
    """`work()`, or None after saying that rollouts itself failed (a bug, not the input).

    Findings about the input exit 1; this exits EXIT_INTERNAL so that CI can tell a broken
    tool from a broken manifest. ROLLOUTS_DEBUG=1 adds the traceback.
    """
    try:
        return work()
    except Exception as exc:  # every input problem is a Problem: this is a bug
        err.write(f"rollouts {command}: internal error (a bug in rollouts; please report it): "
                  f"{type(exc).__name__}: {str(exc)[:300]}\n")
        if os.environ.get("ROLLOUTS_DEBUG"):
            err.write(traceback.format_exc())
        return None
