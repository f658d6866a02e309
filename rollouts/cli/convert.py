"""`rollouts convert`: Argo Rollouts manifests to rollouts.dev/v1alpha1.

The API is field-compatible, so conversion is the apiVersion. What it adds is honesty: every
converted document is validated with our models and every field we do not support is
reported (on stderr) instead of being dropped, so nobody ships a Rollout that silently lost
its analysis or its traffic router. The YAML is edited in place (ruamel.yaml's round trip):
comments, key order, quoting and block scalars come out as they went in.

Input that cannot be converted at all (a missing file, text that is not UTF-8, invalid YAML,
an alias bomb) is an error, reported apart from the rest. What converts but will not be
accepted is one of two things, told apart because the fixes differ: `unsupported` (a field
or kind this project does not run: remove it or wait for it) and `invalid` (a field we run,
given a value the API server or the controller would reject: fix the value, named with it).
Other objects that point at an Argo Rollout (an HPA's or a KEDA ScaledObject's
`scaleTargetRef`, a VPA's `targetRef`) are pointed at the converted one.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError as RuamelError

from rollouts.cli.lint import (
    ARGO_API_VERSION,
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    KINDS,
    Document,
    Problem,
    argo_rollout_refs,
    check_experiment,
    check_rollout,
    check_template,
    guarded,
)
from rollouts.cli.lint_pods import PodTemplateChecker
from rollouts.cli.manifests import Source, load_documents, read_source, yaml_files
from rollouts.models.rollout import API_VERSION

# How the models word a refusal of something valid in Argo that this project does not run:
# an unknown field ("not supported by rollouts.dev/v1alpha1"), a metric provider
# ("unsupported metric provider"), a router capability ("not supported by this Rollout's
# traffic router", "needs a router that supports it", "with the alb and istio routers
# only"). tests/cli/test_argo_corpus_regressions.py pins each wording to its class.
_REFUSAL = re.compile(r"not supported|unsupported|needs a router that supports|routers only")


@dataclass
class Conversion:
    text: str = ""
    errors: list[Problem] = field(default_factory=list)  # input that could not be read
    unsupported: list[Problem] = field(default_factory=list)  # converted, but will not run
    invalid: list[Problem] = field(default_factory=list)  # a value the API would reject
    retargeted: list[Problem] = field(default_factory=list)  # references to a Rollout moved


# Unknown fields that are not features this project lacks but mistakes Argo's own API would not
# take either: fields of older Argo releases (an old manifest to update) and a classic
# mis-indentation. They are reported as invalid, with the fix. (path pattern, message)
_OLD = "a field of older Argo Rollouts releases, gone from today's Argo too"
_KNOWN_MISTAKES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), message) for pattern, message in (
        (r"\.metrics\[\d+\]\.maxFailures$", f"{_OLD}: use failureLimit"),
        (r"\.steps\[\d+\]\.setHeaderRouting$", f"{_OLD}: use setHeaderRoute"),
        (r"^spec\.strategy\.type$",
         f"{_OLD}: remove it (`canary` or `blueGreen` chooses the strategy)"),
        (r"(^|\.)analysis\.(name|templateName)$",
         f"{_OLD}: use analysis.templates[].templateName"),
        (r"^spec\.analysisSpec$", f"{_OLD}: put the run's metrics and args in spec itself"),
        (r"\.prometheus\.server$", f"{_OLD}: use prometheus.address"),
        (r"\.steps\[\d+\]\.duration$",
         "a step has no duration: indent it under pause (pause.duration)"),
    ))


def known_mistake(problem: Problem) -> Problem:
    """The problem, reworded when its unknown field is a known mistake (see above)."""
    if not problem.message.startswith("unknown field"):
        return problem
    for pattern, message in _KNOWN_MISTAKES:
        if pattern.search(problem.path):
            return replace(problem, message=message)
    return problem


def is_refusal(problem: Problem) -> bool:
    """Whether a problem refuses a feature (unsupported) rather than a value (invalid)."""
    return problem.path == "kind" or bool(_REFUSAL.search(problem.message))


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def value_at(body: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of a field path like `spec.templates[0].replicas` in a document."""
    node = body
    for name, index in _STEP.findall(path):
        if name and isinstance(node, dict) and name in node:
            node = node[name]
        elif index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        else:
            return False, None
    return True, node


def with_value(problem: Problem, body: Any) -> Problem:
    """The problem, its message naming the value found at its path (when it is not already
    quoted there and is a plain value, not a whole mapping or list)."""
    found, value = value_at(body, problem.path)
    if not found or isinstance(value, (dict, list)) or repr(value) in problem.message:
        return problem
    return replace(problem, message=f"{problem.message} (got {value!r})")


def retarget(body: dict[str, Any], doc: Document) -> list[Problem]:
    """Point a non-Argo object's reference to an Argo Rollout at the converted Rollout."""
    moved = []
    for path, ref in argo_rollout_refs(body):
        assert isinstance(ref, dict)  # a node of the round-trip tree, edited in place
        ref["apiVersion"] = API_VERSION
        moved.append(Problem(doc.file, doc.index, f"{path}.apiVersion",
                             f"{ARGO_API_VERSION} Rollout -> {API_VERSION}"))
    return moved


def convert_document(doc: Document, pods: PodTemplateChecker | None = None
                     ) -> tuple[dict[str, Any], list[Problem]]:
    """The converted body and what in it we cannot run."""
    body = copy.deepcopy(dict(doc.body))
    kind = body.get("kind")
    if body.get("apiVersion") != ARGO_API_VERSION:
        return body, []
    if kind not in KINDS:
        return body, [Problem(doc.file, doc.index, "kind", f"{kind} is not supported; left as is")]
    body["apiVersion"] = API_VERSION
    converted = Document(doc.file, doc.index, body)
    check = {"Rollout": check_rollout, "Experiment": check_experiment}.get(
        str(kind), check_template)
    problems = check(converted, pods)
    return body, [p for p in problems if not p.warning]


def _round_trip(text: str) -> YAML:
    """A round-trip YAML keeping the input's indentation of mappings and sequences."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    mapping, offset = 2, 0
    previous = ""
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        parent = len(previous) - len(previous.lstrip(" "))
        if previous.rstrip().endswith(":") and indent > parent:
            if stripped.startswith("- "):
                offset = indent - parent
                break
            mapping = indent - parent
        previous = line
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return yaml


def _convert_source(source: Source, pods: PodTemplateChecker, result: Conversion) -> str:
    docs, errors, _ = load_documents(source)
    if errors:
        result.errors += errors
        return ""
    assert source.text is not None
    yaml = _round_trip(source.text)
    try:
        trees = [tree for tree in yaml.load_all(source.text)]
    except (RuamelError, ValueError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        why = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        result.errors.append(Problem(source.name, 0, "<yaml>", f"invalid YAML{where}: {why}"))
        return ""
    by_index = {doc.index: doc for doc in docs}
    kept = []
    for index, tree in enumerate(trees, start=1):
        if tree is None:
            continue
        kept.append(tree)
        doc = by_index.get(index)
        if doc is None:
            continue
        found = [known_mistake(p) for p in convert_document(doc, pods)[1]]
        result.unsupported += [p for p in found if is_refusal(p)]
        result.invalid += [with_value(p, doc.body) for p in found if not is_refusal(p)]
        if doc.body.get("apiVersion") == ARGO_API_VERSION and doc.body.get("kind") in KINDS:
            tree["apiVersion"] = API_VERSION
        elif doc.body.get("apiVersion") != ARGO_API_VERSION and isinstance(tree, dict):
            result.retargeted += retarget(tree, doc)
    out = io.StringIO()
    yaml.dump_all(kept, out)
    return out.getvalue()


_DOC_START = re.compile(r"\A(%.*\n)*---")


def convert_paths(paths: Iterable[Path], stdin: BinaryIO | None = None) -> Conversion:
    """YAML of every document (converted where it is Argo's), and the problems found."""
    result = Conversion()
    pods = PodTemplateChecker()
    parts: list[str] = []
    for path in yaml_files(paths):
        text = _convert_source(read_source(path, stdin), pods, result)
        if text:
            parts.append(text)
    # Files are joined as one stream: each starts a new document.
    result.text = "".join(
        part if i == 0 or _DOC_START.match(part) else "---\n" + part
        for i, part in enumerate(parts)
    )
    return result


def convert_command(paths: Sequence[Path], out: TextIO, err: TextIO,
                    stdin: BinaryIO | None = None) -> int:
    """Print the converted YAML and the problems; the exit code."""
    result = guarded(lambda: convert_paths(paths, stdin), err, "convert")
    if result is None:
        return EXIT_INTERNAL
    out.write(result.text)
    for problem in result.errors:
        err.write(f"error: {problem}\n")
    for problem in result.retargeted:
        err.write(f"converted: {problem}\n")
    for problem in result.unsupported:
        err.write(f"unsupported: {problem}\n")
    for problem in result.invalid:
        err.write(f"invalid: {problem}\n")
    if result.unsupported:
        err.write(f"{len(result.unsupported)} unsupported field(s): the output will be "
                  "rejected until they are removed\n")
    if result.invalid:
        err.write(f"{len(result.invalid)} invalid value(s): the output will be rejected "
                  "until they are fixed\n")
    return EXIT_FINDINGS if result.errors or result.unsupported or result.invalid else 0
