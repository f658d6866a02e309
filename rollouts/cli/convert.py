"""`rollouts convert`: Argo Rollouts manifests to rollouts.dev/v1alpha1.

The API is field-compatible, so conversion is the apiVersion. What it adds is honesty: every
converted document is validated with our models and every field we do not support is
reported (on stderr, by the caller) instead of being dropped, so nobody ships a Rollout that
silently lost its analysis or its traffic router.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from rollouts.cli.lint import (
    ARGO_API_VERSION,
    KINDS,
    Document,
    Problem,
    check_rollout,
    check_template,
    read_documents,
    yaml_files,
)
from rollouts.models.rollout import API_VERSION

# Argo kinds with no counterpart here (AnalysisRuns are created by the controller).
UNSUPPORTED_KINDS = ("Experiment", "AnalysisRun")


def convert_document(doc: Document) -> tuple[dict[str, Any], list[Problem]]:
    """The converted body and what in it we cannot run."""
    body = copy.deepcopy(dict(doc.body))
    kind = body.get("kind")
    if body.get("apiVersion") != ARGO_API_VERSION:
        return body, []
    if kind not in KINDS:
        why = "created by the controller" if kind == "AnalysisRun" else "not supported"
        return body, [Problem(doc.file, doc.index, "kind", f"{kind} is {why}; left as is")]
    body["apiVersion"] = API_VERSION
    converted = Document(doc.file, doc.index, body)
    problems = check_rollout(converted) if kind == "Rollout" else check_template(converted)
    return body, [p for p in problems if not p.warning]


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def convert_paths(paths: Iterable[Path]) -> tuple[str, list[Problem]]:
    """YAML of every document (converted where it is Argo's), and the problems found."""
    out: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for path in yaml_files(paths):
        if not path.exists():
            problems.append(Problem(str(path), 0, "<file>", "no such file"))
            continue
        docs, errors = read_documents(path)
        problems += errors
        for doc in docs:
            body, found = convert_document(doc)
            out.append(body)
            problems += found
    text = yaml.dump_all(out, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True) if out else ""
    return text, problems
