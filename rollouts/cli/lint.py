"""`rollouts lint`: validate manifests offline, the way the CRDs and the controller would.

Checks, per document: the schema (the same models the CRDs are generated from), rules that
span fields, canary step sanity, analysis condition syntax, and across all the files given:
that every AnalysisTemplate a Rollout names is among them and gets every argument it needs.
Problems print as `FILE:doc N: field.path: message`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rollouts.analysis.conditions import check_condition
from rollouts.models.analysis import AnalysisTemplate, ClusterAnalysisTemplate
from rollouts.models.rollout import API_VERSION, rollout_manifest_errors
from rollouts.traffic import manifest_not_run, manifest_problems

ARGO_API_VERSION = "argoproj.io/v1alpha1"
KINDS = ("Rollout", "AnalysisTemplate", "ClusterAnalysisTemplate")
_PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z0-9_.\-]+\s*\}\}")


@dataclass(frozen=True)
class Problem:
    file: str
    doc: int  # 1-based; 0 for the file as a whole
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:doc {self.doc}" if self.doc else self.file
        prefix = "warning: " if self.warning else ""
        return f"{where}: {prefix}{self.path}: {self.message}"


@dataclass(frozen=True)
class Document:
    file: str
    index: int
    body: Mapping[str, Any]


@dataclass
class _Templates:
    """Templates found in the files: name -> the args they declare without a value."""

    namespaced: dict[str, list[str]] = field(default_factory=dict)
    cluster: dict[str, list[str]] = field(default_factory=dict)


def yaml_files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    return found


def read_documents(path: Path) -> tuple[list[Document], list[Problem]]:
    """Every mapping document of a (multi-document) YAML file, numbered from 1."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [], [Problem(name, 0, "<file>", f"cannot read: {exc.strerror or exc}")]
    docs: list[Document] = []
    try:
        for index, body in enumerate(yaml.safe_load_all(text), start=1):
            if body is None:
                continue
            if not isinstance(body, Mapping):
                return docs, [Problem(name, index, "<root>", "a manifest must be a mapping")]
            docs.append(Document(name, index, body))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return docs, [Problem(name, len(docs) + 1, "<yaml>", f"invalid YAML{where}: "
                              f"{getattr(exc, 'problem', None) or exc}")]
    return docs, []


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


def check_template(doc: Document) -> list[Problem]:
    kind = doc.body.get("kind")
    model = AnalysisTemplate if kind == "AnalysisTemplate" else ClusterAnalysisTemplate
    problems: list[Problem] = []
    if not _dict(doc.body.get("metadata")).get("name"):
        problems.append(Problem(doc.file, doc.index, "metadata.name", "a name is required"))
    try:
        model.model_validate(dict(doc.body))
    except ValidationError as exc:
        problems.extend(_validation_problems(doc, exc))
    for i, metric in enumerate(_list(_dict(doc.body.get("spec")).get("metrics"))):
        for key in ("successCondition", "failureCondition"):
            text = _dict(metric).get(key)
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


def check_rollout(doc: Document) -> list[Problem]:
    problems: list[Problem] = []
    if not _dict(doc.body.get("metadata")).get("name"):
        problems.append(Problem(doc.file, doc.index, "metadata.name", "a name is required"))
    spec = doc.body.get("spec")
    if not isinstance(spec, Mapping):
        return [*problems, Problem(doc.file, doc.index, "spec", "a Rollout needs a spec")]
    problems += [Problem(doc.file, doc.index, path, message)
                 for path, message in (*rollout_manifest_errors(dict(spec),
                                                                refuse_not_run=False),
                                       *manifest_problems(spec))]
    problems += [Problem(doc.file, doc.index, path, message, warning=True)
                 for path, message in manifest_not_run(spec)]
    problems += _step_warnings(doc, spec)
    return problems


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
        elif doc.body.get("kind") == "ClusterAnalysisTemplate":
            found.cluster[name] = _required_args(doc.body)
    return found


def check_references(doc: Document, templates: _Templates) -> list[Problem]:
    spec = _dict(doc.body.get("spec"))
    problems: list[Problem] = []
    for path, analysis in analysis_refs(spec):
        given = {str(_dict(a).get("name")) for a in _list(analysis.get("args"))}
        for j, ref in enumerate(_list(analysis.get("templates"))):
            ref = _dict(ref)
            name = ref.get("templateName")
            if not isinstance(name, str):
                continue
            cluster = bool(ref.get("clusterScope"))
            kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
            table = templates.cluster if cluster else templates.namespaced
            if name not in table:
                problems.append(Problem(doc.file, doc.index,
                                        f"{path}.templates[{j}].templateName",
                                        f'{kind} "{name}" is not in the files given'))
                continue
            for arg in table[name]:
                if arg not in given:
                    problems.append(Problem(doc.file, doc.index, f"{path}.args",
                                            f'argument "{arg}" required by {kind} "{name}" '
                                            "is not provided"))
    return problems


# --- the command ---------------------------------------------------------------------------


def lint_documents(docs: Sequence[Document]) -> list[Problem]:
    templates = collect_templates(docs)
    problems: list[Problem] = []
    for doc in docs:
        api_version = doc.body.get("apiVersion")
        kind = doc.body.get("kind")
        if kind not in KINDS:
            continue
        if api_version == ARGO_API_VERSION:
            problems.append(Problem(doc.file, doc.index, "apiVersion",
                                    f"{ARGO_API_VERSION} is Argo Rollouts; run `rollouts "
                                    f"convert` to get {API_VERSION}"))
            continue
        if api_version != API_VERSION:
            continue
        if kind == "Rollout":
            problems += check_rollout(doc)
            problems += check_references(doc, templates)
        else:
            problems += check_template(doc)
    return problems


def lint_paths(paths: Iterable[Path]) -> tuple[list[Problem], int]:
    """Problems found (warnings included) and how many of our documents were checked."""
    docs: list[Document] = []
    problems: list[Problem] = []
    files = yaml_files(paths)
    for path in files:
        if not path.exists():
            problems.append(Problem(str(path), 0, "<file>", "no such file"))
            continue
        found, errors = read_documents(path)
        docs += found
        problems += errors
    problems += lint_documents(docs)
    checked = sum(1 for d in docs if d.body.get("kind") in KINDS)
    return problems, checked
