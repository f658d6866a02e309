"""`rollouts lint`, names part: object names and labels, as the API server checks them.

The API server refuses a custom resource whose `metadata.name` is not a DNS-1123 subdomain,
and any object whose labels (or a label selector's) have a malformed key or value; the
ReplicaSets and Pods made from a template inherit its labels, so a bad one there fails at
run time. Templates filled in by a script (`name: REPLACEME`, `ROLLOUT_NAME`, `$$name$$`)
are the usual source, and are caught here before an apply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from rollouts.cli.manifests import Document, Problem

MAX_SUBDOMAIN: Final = 253
MAX_LABEL_PART: Final = 63
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
SUBDOMAIN_RULE: Final = ("lowercase letters, digits, '-' and '.', starting and ending with a "
                         f"letter or digit, at most {MAX_SUBDOMAIN} characters")
LABEL_RULE: Final = ("letters, digits, '-', '_' and '.', starting and ending with a letter "
                     f"or digit, at most {MAX_LABEL_PART} characters")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def is_subdomain(text: str) -> bool:
    return len(text) <= MAX_SUBDOMAIN and _SUBDOMAIN.fullmatch(text) is not None


def _is_label_part(text: str) -> bool:
    return len(text) <= MAX_LABEL_PART and _LABEL_NAME.fullmatch(text) is not None


def label_key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and not is_subdomain(prefix):
        return f"label key {key!r}: the prefix must be a DNS subdomain ({SUBDOMAIN_RULE})"
    if not _is_label_part(name):
        return f"label key {key!r}: the name must be {LABEL_RULE}"
    return None


def label_value_problem(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _is_label_part(value):
        return f"label {key}={value!r}: a value must be empty or {LABEL_RULE}"
    return None


def label_problems(labels: Any, path: str) -> list[tuple[str, str]]:
    """(path, message) for every malformed key or value of a label map at `path`."""
    found = []
    for key, value in _dict(labels).items():
        message = label_key_problem(str(key)) or label_value_problem(str(key), value)
        if message is not None:
            found.append((path, message))
    return found


def name_problems(doc: Document) -> list[Problem]:
    """metadata.name (or generateName, when there is no name) and metadata.labels."""
    metadata = _dict(doc.body.get("metadata"))
    name, prefix = metadata.get("name"), metadata.get("generateName")
    found: list[tuple[str, str]] = []
    if not name and not prefix:
        # `kubectl create` names an object from generateName: either one will do.
        found.append(("metadata.name", "a name (or generateName) is required"))
    elif name and not (isinstance(name, str) and is_subdomain(name)):
        found.append(("metadata.name", f"{name!r} is not a valid name ({SUBDOMAIN_RULE})"))
    elif not name and not (isinstance(prefix, str) and is_subdomain(prefix + "x")):
        found.append(("metadata.generateName",
                      f"{prefix!r} does not start a valid name ({SUBDOMAIN_RULE})"))
    found += label_problems(metadata.get("labels"), "metadata.labels")
    return [Problem(doc.file, doc.index, path, message) for path, message in found]


def _label_maps(spec: Mapping[str, Any], base: str) -> Iterator[tuple[Any, str]]:
    yield _dict(spec.get("selector")).get("matchLabels"), f"{base}.selector.matchLabels"
    yield (_dict(_dict(spec.get("template")).get("metadata")).get("labels"),
           f"{base}.template.metadata.labels")


def spec_label_problems(doc: Document) -> list[Problem]:
    """Malformed labels in a Rollout's or an Experiment's selectors and pod templates (the
    ReplicaSets and Pods would be refused)."""
    spec = _dict(doc.body.get("spec"))
    maps = list(_label_maps(spec, "spec"))
    templates = spec.get("templates")
    for i, template in enumerate(templates if isinstance(templates, list) else []):
        maps += _label_maps(_dict(template), f"spec.templates[{i}]")
    return [Problem(doc.file, doc.index, path, message)
            for labels, base in maps for path, message in label_problems(labels, base)]
