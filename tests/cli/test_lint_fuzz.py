"""Fuzzing `lint` and `convert`: mutated manifests, wrong types, huge numbers, deep nesting,
binary junk and unicode. Whatever the input, the commands answer 0 or 1 with findings: never
a traceback (exit 3, "internal error") and never a hang.

The suite runs a small, derandomized budget (ROLLOUTS_FUZZ_EXAMPLES, default 200 a test);
`python bench/fuzz_conditions.py --target lint --examples 2000` runs a bigger one.
"""

from __future__ import annotations

import copy
import io
import os
import pathlib
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts.cli.convert import convert_command
from rollouts.cli.lint import lint_command

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("ROLLOUTS_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 200,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _seed_documents() -> list[Any]:
    docs: list[Any] = []
    for path in sorted([*(ROOT / "tests" / "cli" / "data").glob("*.yaml"),
                        *(ROOT / "examples").glob("*.yaml")]):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return docs


SEEDS = _seed_documents()

ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(),
    st.sampled_from([10**50, -(10**30), 2**63, -1, 0, 65536, 1e308, float("nan"), "", "x" * 300,
                     "invalid", "500m", "1Gi", "-1Gi", "{{args.x}}", "result[0] >", "é",
                     "\u202e", "\x00", "argoproj.io/v1alpha1", "rollouts.dev/v1beta1",
                     "rollouts.dev/v1alpha1", "Rollout", "AnalysisTemplate"]),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": [value]}
    return value


@st.composite
def mutated_manifest(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        # walk to a random node and replace, delete or add something there
        node: Any = doc
        for _ in range(draw(st.integers(min_value=0, max_value=6))):
            children = list(node.items()) if isinstance(node, dict) else \
                list(enumerate(node)) if isinstance(node, list) else []
            children = [(k, v) for k, v in children if isinstance(v, (dict, list))]
            if not children:
                break
            node = draw(st.sampled_from(children))[1]
        action = draw(st.sampled_from(["replace", "delete", "add", "deep"]))
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) \
            if isinstance(node, list) else []
        if not keys:
            continue
        key = draw(st.sampled_from(keys))
        if action == "replace":
            node[key] = draw(ODD_VALUES)
        elif action == "delete":
            del node[key]
        elif action == "add" and isinstance(node, dict):
            node[draw(st.text(min_size=1, max_size=8))] = draw(ODD_VALUES)
        elif action == "deep":
            node[key] = _deep(draw(st.integers(min_value=1, max_value=150)))
    try:
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, RecursionError):
        text = "a: b\n"
    return text.encode("utf-8", errors="surrogatepass")


YAMLISH = st.lists(st.sampled_from([
    "apiVersion: rollouts.dev/v1alpha1\n", "kind: Rollout\n", "---\n", "spec:\n", "  - ",
    "&a ", "*a ", "[", "]", "{", "}", ": ", "- ", "\n", "  ", "'", '"', "!!python/object ",
    "!!binary ", "<<: *a\n", "%YAML 1.1\n", "9" * 50, "é", "\t", "#c\n", "? ", "|\n", ">-\n",
]), max_size=40).map(lambda parts: "".join(parts).encode())

INPUTS = st.one_of(mutated_manifest(), YAMLISH, st.binary(max_size=300),
                   st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))


def _run(command: Any, data: bytes) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = command([pathlib.Path("-")], out, err, io.BytesIO(data))
    return code, err.getvalue()


@FUZZ
@given(INPUTS)
def test_lint_never_fails_internally(data: bytes) -> None:
    code, err = _run(lint_command, data)
    assert code in (0, 1), err
    assert "internal error" not in err and "Traceback" not in err


@FUZZ
@given(INPUTS)
def test_convert_never_fails_internally(data: bytes) -> None:
    code, err = _run(convert_command, data)
    assert code in (0, 1), err
    assert "internal error" not in err and "Traceback" not in err
