"""The CRDs in crds/ are what the models generate, and Kubernetes can accept them."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from rollouts.models import analysis, comparison, rollout, rollout_analysis
from rollouts.models.cel_rules import CEL_RULES, exactly_one, rules_for
from rollouts.models.crds import HEADER, crds_differ, generate_crds, render_crds, write_crds
from rollouts.models.structural_schema import (
    INT_OR_STRING,
    PRESERVE_UNKNOWN,
    VALIDATIONS,
    UnsupportedSchemaError,
    model_schema,
)

REPO = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO / "crds"

CRDS = generate_crds()
ROLLOUTS = CRDS["rollouts.dev_rollouts.yaml"]
ANALYSIS_RUNS = CRDS["rollouts.dev_analysisruns.yaml"]


def schema_of(crd: Mapping[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def at(node: Mapping[str, Any], *path: str) -> dict[str, Any]:
    """Follow property names ("[]" steps into items) from a schema node."""
    current: Any = node
    for part in path:
        current = current["items"] if part == "[]" else current["properties"][part]
    return dict(current)


def walk(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), Mapping):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from walk(node["additionalProperties"], f"{path}{{}}")
    for junctor in ("anyOf", "allOf", "oneOf"):
        for i, sub in enumerate(node.get(junctor, ())):
            yield from walk(sub, f"{path}<{junctor}{i}>")


# --- in sync with the models ------------------------------------------------------------------


def test_checked_in_crds_match_the_models() -> None:
    stale = crds_differ(CRDS_DIR)
    assert not stale, (
        f"crds/ is out of date with rollouts/models ({', '.join(stale)}): "
        "run `rollouts gen-crds` and commit the result"
    )


def test_every_file_is_one_crd_with_the_header() -> None:
    for name, text in render_crds().items():
        assert text.startswith(HEADER)
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
        assert len(docs) == 1, name
        crd = docs[0]
        assert crd["kind"] == "CustomResourceDefinition"
        group = crd["spec"]["group"]
        plural = crd["spec"]["names"]["plural"]
        assert name == f"{group}_{plural}.yaml"
        assert crd["metadata"]["name"] == f"{plural}.{group}"


def test_rendering_is_deterministic() -> None:
    assert render_crds() == render_crds()


def test_write_then_compare_round_trips(tmp_path: Path) -> None:
    assert sorted(crds_differ(tmp_path)) == sorted(render_crds())
    written = write_crds(tmp_path)
    assert sorted(p.name for p in written) == sorted(render_crds())
    assert crds_differ(tmp_path) == []

    (tmp_path / "rollouts.dev_rollouts.yaml").write_text(HEADER + "kind: Old\n")
    (tmp_path / "rollouts.dev_gone.yaml").write_text(HEADER + "kind: Removed\n")
    (tmp_path / "hand-written.yaml").write_text("kind: Mine\n")
    assert crds_differ(tmp_path) == ["rollouts.dev_gone.yaml", "rollouts.dev_rollouts.yaml"]

    write_crds(tmp_path)
    assert crds_differ(tmp_path) == []
    assert not (tmp_path / "rollouts.dev_gone.yaml").exists()
    assert (tmp_path / "hand-written.yaml").exists()


# --- structural -------------------------------------------------------------------------------

INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
FORBIDDEN_KEYS = {
    "$ref",
    "$defs",
    "definitions",
    "allOf",
    "oneOf",
    "not",
    "nullable",
    "const",
    "title",
    "uniqueItems",
    "patternProperties",
    "dependencies",
    "additionalItems",
}


def structural_problems(root: Mapping[str, Any]) -> list[str]:
    """What apiextensions.k8s.io/v1 would reject as non-structural (or as a bad default)."""
    problems: list[str] = []
    for path, node in walk(root):
        if "<anyOf" in path:
            if set(node) != {"type"}:
                problems.append(f"{path}: only a bare type may stand inside anyOf")
            continue
        where = path or "<root>"
        for key in FORBIDDEN_KEYS & set(node):
            problems.append(f"{where}: {key} is not allowed")
        if isinstance(node.get("additionalProperties"), bool):
            problems.append(f"{where}: additionalProperties must be a schema, not a boolean")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: properties and additionalProperties are exclusive")
        if node.get(INT_OR_STRING):
            if "type" in node or node.get("anyOf") != INT_OR_STRING_ANY_OF:
                problems.append(f"{where}: int-or-string must be exactly anyOf [integer, string]")
        elif "anyOf" in node:
            problems.append(f"{where}: anyOf is only allowed for int-or-string")
        if "type" not in node and not node.get(INT_OR_STRING) and not node.get(PRESERVE_UNKNOWN):
            problems.append(f"{where}: no type")
        if node.get("type") == "array" and "items" not in node:
            problems.append(f"{where}: an array needs items")
        # The root's metadata is the API server's own (ObjectMeta); it is never pruned.
        if (
            path != ".metadata"
            and node.get("type") == "object"
            and not (
                {"properties", "additionalProperties"} & set(node) or node.get(PRESERVE_UNKNOWN)
            )
        ):
            problems.append(f"{where}: an object that declares nothing prunes everything")
        if "default" in node:
            problems.extend(default_problems(where, node))
        for rule in node.get(VALIDATIONS, ()):
            if set(rule) != {"rule", "message"} or not rule["rule"] or not rule["message"]:
                problems.append(f"{where}: a validation needs a rule and a message")
            elif "\n" in rule["rule"]:
                problems.append(f"{where}: a rule must be one line")
    return problems


def default_problems(path: str, node: Mapping[str, Any]) -> list[str]:
    """Kubernetes rejects a CRD whose defaults fail their own schema."""
    value = node["default"]
    problems = []
    if ".status" in path:
        problems.append(f"{path}: no defaults under status")
    if isinstance(value, dict | list) or value is None:
        problems.append(f"{path}: only scalar defaults are generated")
    if "enum" in node and value not in node["enum"]:
        problems.append(f"{path}: default {value!r} not in enum")
    if isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in node and value < node["minimum"]:
            problems.append(f"{path}: default below minimum")
        if "maximum" in node and value > node["maximum"]:
            problems.append(f"{path}: default above maximum")
        if node.get("type") not in ("integer", "number", None):
            problems.append(f"{path}: integer default for a {node.get('type')}")
    if isinstance(value, str):
        if "pattern" in node and not re.search(node["pattern"], value):
            problems.append(f"{path}: default does not match pattern")
        if node.get("type") not in ("string", None):
            problems.append(f"{path}: string default for a {node.get('type')}")
    if isinstance(value, bool) and node.get("type") != "boolean":
        problems.append(f"{path}: boolean default for a {node.get('type')}")
    return problems


@pytest.mark.parametrize("name", sorted(CRDS))
def test_schema_is_structural(name: str) -> None:
    root = schema_of(CRDS[name])
    assert root["type"] == "object"
    assert structural_problems(root) == []


def test_the_structural_check_catches_what_kubernetes_rejects() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/x"},
            "b": {"type": "object", "additionalProperties": False, "properties": {}},
            "c": {
                "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}],
                INT_OR_STRING: True,
            },
            "d": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "e": {"type": "integer", "default": -1, "minimum": 0},
        },
    }
    problems = "\n".join(structural_problems(bad))
    for fragment in (
        ".a: $ref",
        ".a: no type",
        ".b: additionalProperties",
        ".c<anyOf0>",
        ".d: anyOf is only allowed",
        ".e: default below minimum",
    ):
        assert fragment in problems


def test_int_or_string_constraints_sit_next_to_the_any_of() -> None:
    surge = at(schema_of(ROLLOUTS), "spec", "strategy", "canary", "maxSurge")
    assert surge == {
        "default": "25%",
        "minimum": 0,
        "pattern": "^[0-9]+%$",
        "anyOf": INT_OR_STRING_ANY_OF,
        INT_OR_STRING: True,
    }
    duration = at(
        schema_of(ROLLOUTS), "spec", "strategy", "canary", "steps", "[]", "pause", "duration"
    )
    assert duration[INT_OR_STRING] is True and "pattern" in duration


def test_free_form_objects_keep_unknown_fields() -> None:
    spec = schema_of(ROLLOUTS)["properties"]["spec"]
    for field in ("metadata", "spec"):
        node = at(spec, "template", field)
        assert node == {"type": "object", PRESERVE_UNKNOWN: True}
    labels = at(spec, "selector", "matchLabels")
    assert labels == {"type": "object", "additionalProperties": {"type": "string"}}
    job_spec = at(schema_of(ANALYSIS_RUNS), "spec", "metrics", "[]", "provider", "job", "spec")
    assert job_spec["type"] == "object" and job_spec[PRESERVE_UNKNOWN] is True


def test_spec_is_pruned_and_status_keeps_unknown_fields() -> None:
    for crd in (ROLLOUTS, ANALYSIS_RUNS):
        root = schema_of(crd)
        assert PRESERVE_UNKNOWN not in root["properties"]["spec"]
        assert root["properties"]["status"][PRESERVE_UNKNOWN] is True
        assert "phase" in root["properties"]["status"]["properties"]
        assert root["required"] == ["spec"]


def test_descriptions_and_enums_come_from_the_models() -> None:
    spec = schema_of(ROLLOUTS)["properties"]["spec"]
    assert "passed through" in at(spec, "template")["description"]
    operator = at(spec, "selector", "matchExpressions", "[]", "operator")
    assert operator["enum"] == ["In", "NotIn", "Exists", "DoesNotExist"]
    assert at(spec, "replicas") == {"type": "integer", "default": 1, "minimum": 0,
                                    "maximum": 2**31 - 1}
    # setWeight is out of maxTrafficWeight, so its bound is a semantic rule, not the schema.
    assert "maximum" not in at(spec, "strategy", "canary", "steps", "[]", "setWeight")


def test_unsupported_shapes_are_refused_with_the_field_named() -> None:
    class Union(BaseModel):
        choice: int | list[str]

    with pytest.raises(UnsupportedSchemaError, match=r"Union\.choice"):
        model_schema(Union)


# --- CEL rules --------------------------------------------------------------------------------

ROLLOUT_SPEC = ("spec",)
STRATEGY = (*ROLLOUT_SPEC, "strategy")
CANARY = (*STRATEGY, "canary")
STEP = (*CANARY, "steps", "[]")
METRIC = ("spec", "metrics", "[]")

EXPECTED_RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("rollouts.dev_rollouts.yaml", STRATEGY, "has(self.canary) != has(self.blueGreen)"),
    ("rollouts.dev_rollouts.yaml", STEP, "a step needs at least one of setCanaryScale"),
    ("rollouts.dev_rollouts.yaml", STEP, "a step has at most one of setWeight"),
    ("rollouts.dev_rollouts.yaml", (*STEP, "setCanaryScale"), "weight, replicas"),
    ("rollouts.dev_rollouts.yaml", CANARY, "canaryService and stableService"),
    ("rollouts.dev_rollouts.yaml", (*STRATEGY, "blueGreen"), "activeService and previewService"),
    ("rollouts.dev_rollouts.yaml", ROLLOUT_SPEC, "selector must not be empty"),
    ("rollouts.dev_analysistemplates.yaml", (*METRIC, "provider"), "prometheus, web, job"),
    ("rollouts.dev_clusteranalysistemplates.yaml", (*METRIC, "provider"), "prometheus, web, job"),
    ("rollouts.dev_analysisruns.yaml", (*METRIC, "provider"), "prometheus, web, job"),
]


@pytest.mark.parametrize(("file", "path", "text"), EXPECTED_RULES)
def test_cel_rule_is_on_its_node(file: str, path: tuple[str, ...], text: str) -> None:
    rules = at(schema_of(CRDS[file]), *path).get(VALIDATIONS, [])
    assert any(text in r["rule"] or text in r["message"] for r in rules), rules


def test_every_rule_of_the_table_is_emitted() -> None:
    emitted = {
        (r["rule"], r["message"])
        for crd in CRDS.values()
        for _, node in walk(schema_of(crd))
        for r in node.get(VALIDATIONS, ())
    }
    for rules in CEL_RULES.values():
        for rule in rules:
            assert (rule.rule, rule.message) in emitted


def test_subclasses_inherit_rules() -> None:
    assert rules_for(analysis.AnalysisTemplateSpec) == CEL_RULES[analysis.AnalysisTemplateSpec]
    assert (rules_for(rollout_analysis.RolloutAnalysisBackground)
            == rules_for(rollout_analysis.RolloutAnalysis))


# An object in a list without maxItems is costed by the API server as if it occurred ~1M times
# against a 10M per-rule budget: only presence tests and boolean operators fit.
CHEAP_RULE = re.compile(r"^(?:has\(self\.\w+\)|self\.\w+|[!()?:|&= ]|!=)+$")


@pytest.mark.parametrize("name", sorted(CRDS))
def test_rules_inside_unbounded_lists_stay_cheap(name: str) -> None:
    for path, node in walk(schema_of(CRDS[name])):
        if "[]" not in path:
            continue
        for rule in node.get(VALIDATIONS, ()):
            assert CHEAP_RULE.match(rule["rule"]), f"{path}: {rule['rule']}"


def test_exactly_one_shapes() -> None:
    assert exactly_one("has(self.a)") == "has(self.a)"
    assert exactly_one("has(self.a)", "has(self.b)") == "has(self.a) != has(self.b)"
    assert exactly_one("has(self.a)", "has(self.b) && self.b") == (
        "has(self.a) != (has(self.b) && self.b)"
    )


# Rules are checked against the model validators they mirror: for every combination of the
# sample fields, the CEL verdict equals pydantic's. Needs cel-python (`pip install cel-python`).

RULE_CASES: list[tuple[type[BaseModel], dict[str, Any], dict[str, list[Any]]]] = [
    (comparison.CompareTolerance, {}, {"relative": [0.1], "absolute": [2.0]}),
    (rollout.RolloutStrategy, {}, {"canary": [{}], "blueGreen": [{"activeService": "a"}]}),
    (
        rollout.CanaryStep,
        {},
        {
            "setWeight": [10],
            "pause": [{}],
            "setCanaryScale": [{"weight": 5}],
            "analysis": [{"templates": [{"templateName": "t"}]}],
            "setHeaderRoute": [{"name": "h"}],
            "setMirrorRoute": [{"name": "m"}],
            "experiment": [{"templates": [{"name": "e", "specRef": "stable"}]}],
            "plugin": [{"name": "p"}],
        },
    ),
    (
        rollout.SetCanaryScale,
        {},
        {"weight": [5], "replicas": [2], "matchTrafficWeight": [True, False]},
    ),
    (rollout.CanaryStrategy, {}, {"canaryService": ["", "a", "b"], "stableService": ["", "a"]}),
    (rollout.BlueGreenStrategy, {"activeService": "a"}, {"previewService": ["", "a", "b"]}),
    (
        rollout_analysis.ArgumentValueFrom,
        {},
        {"podTemplateHashValue": ["Stable"], "fieldRef": [{"fieldPath": "metadata.name"}]},
    ),
    (
        rollout.RolloutSpec,
        {
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {}},
            "strategy": {"canary": {}},
        },
        {
            "selector": [
                {},
                {"matchLabels": {}},
                {"matchLabels": {"app": "x"}},
                {"matchExpressions": []},
                {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            ]
        },
    ),
    (
        analysis.ValueFrom,
        {},
        {
            "secretKeyRef": [{"name": "s", "key": "k"}],
            "fieldRef": [{"fieldPath": "metadata.name"}],
            "podTemplateHashValue": ["Latest"],
        },
    ),
    (
        analysis.Argument,
        {"name": "a"},
        {"value": ["1"], "valueFrom": [{"podTemplateHashValue": "Stable"}]},
    ),
    (
        analysis.PrometheusAuthentication,
        {},
        {
            "basic": [{"secretRef": {"name": "s", "usernameKey": "u", "passwordKey": "p"}}],
            "bearer": [{"secretKeyRef": {"name": "s", "key": "t"}}],
            "basicAuth": [{"username": "u", "password": "p"}],
            "oauth2": [{"tokenUrl": "http://t", "clientId": "c", "clientSecret": "s"}],
        },
    ),
    (
        analysis.WebMetric,
        {"url": "http://x", "method": "POST"},
        {"body": ["{}"], "jsonBody": [{"a": 1}]},
    ),
    (
        analysis.MetricProvider,
        {},
        {"prometheus": [{"query": "up"}], "web": [{"url": "http://x"}], "job": [{"spec": {}}],
         "datadog": [{"query": "q"}], "graphite": [{"address": "http://g", "query": "q"}]},
    ),
    (
        analysis.AnalysisTemplateSpec,
        {},
        {
            "metrics": [[], [{"name": "m", "provider": {"prometheus": {"query": "up"}}}]],
            "templates": [[], [{"templateName": "t"}]],
        },
    ),
    (
        analysis.AnalysisRunSpec,
        {},
        {"metrics": [[], [{"name": "m", "provider": {"prometheus": {"query": "up"}}}]]},
    ),
]


def combinations(
    base: Mapping[str, Any], samples: Mapping[str, list[Any]]
) -> Iterator[dict[str, Any]]:
    absent = object()
    fields = list(samples)
    for values in itertools.product(*([absent, *samples[f]] for f in fields)):
        obj = dict(base)
        obj.update({f: v for f, v in zip(fields, values, strict=True) if v is not absent})
        yield obj


def test_every_rule_has_a_semantic_case() -> None:
    assert {model for model, _, _ in RULE_CASES} == set(CEL_RULES)


@pytest.mark.parametrize(
    ("model", "base", "samples"), RULE_CASES, ids=[m.__name__ for m, _, _ in RULE_CASES]
)
def test_cel_rules_agree_with_the_model_validators(
    model: type[BaseModel], base: dict[str, Any], samples: dict[str, list[Any]]
) -> None:
    celpy = pytest.importorskip("celpy")
    env = celpy.Environment()
    programs = [(r, env.program(env.compile(r.rule))) for r in rules_for(model)]
    assert programs
    for obj in combinations(base, samples):
        try:
            model.model_validate(obj)
            accepted = True
        except ValidationError:
            accepted = False
        activation = {"self": celpy.json_to_cel(obj)}
        verdicts = [bool(program.evaluate(activation)) for _, program in programs]
        assert all(verdicts) == accepted, (obj, [r.rule for r, _ in programs], verdicts)


# --- names, scope, subresources, columns -------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "kind", "scope", "short"),
    [
        ("rollouts.dev_rollouts.yaml", "Rollout", "Namespaced", ["ro"]),
        ("rollouts.dev_analysistemplates.yaml", "AnalysisTemplate", "Namespaced", ["at"]),
        (
            "rollouts.dev_clusteranalysistemplates.yaml",
            "ClusterAnalysisTemplate",
            "Cluster",
            ["cat"],
        ),
        ("rollouts.dev_analysisruns.yaml", "AnalysisRun", "Namespaced", ["ar"]),
    ],
)
def test_names_and_scope(file: str, kind: str, scope: str, short: list[str]) -> None:
    spec = CRDS[file]["spec"]
    assert spec["group"] == "rollouts.dev"
    assert spec["scope"] == scope
    assert spec["names"]["kind"] == kind
    assert spec["names"]["singular"] == kind.lower()
    assert spec["names"]["shortNames"] == short
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


def test_rollout_subresources_and_columns() -> None:
    (version,) = ROLLOUTS["spec"]["versions"]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Desired": ".spec.replicas",
        "Current": ".status.replicas",
        "Up-to-date": ".status.updatedReplicas",
        "Available": ".status.availableReplicas",
        "Phase": ".status.phase",
        "Step": ".status.step",
        "Age": ".metadata.creationTimestamp",
    }
    status = schema_of(ROLLOUTS)["properties"]["status"]["properties"]
    for path in columns.values():
        section, _, field = path[1:].partition(".")
        if section == "status":
            assert field in status, f"printer column {path} names no status field"


def test_analysis_run_subresources_and_columns() -> None:
    (version,) = ANALYSIS_RUNS["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Status": ("string", ".status.phase"),
        "Age": ("date", ".metadata.creationTimestamp"),
    }
    templates = CRDS["rollouts.dev_analysistemplates.yaml"]["spec"]["versions"][0]
    assert "subresources" not in templates


def test_kopf_peering_crds_match_kopf() -> None:
    for file, kind, scope in (
        ("kopf.dev_clusterkopfpeerings.yaml", "ClusterKopfPeering", "Cluster"),
        ("kopf.dev_kopfpeerings.yaml", "KopfPeering", "Namespaced"),
    ):
        spec = CRDS[file]["spec"]
        assert spec["group"] == "kopf.dev"
        assert spec["scope"] == scope
        assert spec["names"]["kind"] == kind
        assert spec["names"]["plural"] == kind.lower() + "s"
        (version,) = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
        status = schema_of(CRDS[file])["properties"]["status"]
        assert status == {"type": "object", PRESERVE_UNKNOWN: True}
