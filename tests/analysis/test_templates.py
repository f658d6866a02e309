"""Building an AnalysisRun from a Rollout's analysis reference (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rollouts.analysis.templates import (
    ANALYSIS_KIND_LABEL,
    ANALYSIS_STEP_LABEL,
    ROLLOUT_LABEL,
    analysis_run_name,
    build_analysis_run,
    placeholders,
    substitute_args,
)
from rollouts.errors import InvalidSpecError
from rollouts.models.analysis import (
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    load_analysis_run,
    load_analysis_template,
    load_cluster_analysis_template,
)
from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL, Rollout
from rollouts.models.rollout_analysis import RolloutAnalysis

ROLLOUT: dict[str, Any] = {
    "apiVersion": "rollouts.dev/v1alpha1",
    "kind": "Rollout",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "rollout-uid",
        "labels": {"app": "web-app", "team": "checkout"},
        "annotations": {"owner": "sre@example.com"},
    },
    "spec": {},
}


def template(name: str, *, cluster: bool = False, **spec: Any) -> Any:
    body = {
        "apiVersion": "rollouts.dev/v1alpha1",
        "kind": "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": spec,
    }
    return load_cluster_analysis_template(body) if cluster else load_analysis_template(body)


def prom_metric(name: str, query: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "successCondition": "result[0] >= 0.95",
        "provider": {"prometheus": {"address": "http://prom:9090", "query": query}},
        **fields,
    }


def analysis(*names: str | tuple[str, bool], args: Any = None, **extra: Any) -> RolloutAnalysis:
    refs = [
        {"templateName": n[0], "clusterScope": n[1]}
        if isinstance(n, tuple)
        else {"templateName": n}
        for n in names
    ]
    data: dict[str, Any] = {"templates": refs, **extra}
    if args is not None:
        data["args"] = args
    return RolloutAnalysis.model_validate(data)


def build(
    ref: RolloutAnalysis,
    templates: list[AnalysisTemplate] = (),  # type: ignore[assignment]
    clusters: list[ClusterAnalysisTemplate] = (),  # type: ignore[assignment]
    **kwargs: Any,
) -> dict[str, Any]:
    kwargs.setdefault("kind", "step")
    kwargs.setdefault("pod_hash", "abc123")
    return build_analysis_run(
        kwargs.pop("rollout", ROLLOUT),
        ref,
        templates={t.metadata["name"]: t for t in templates},
        cluster_templates={t.metadata["name"]: t for t in clusters},
        **kwargs,
    )


def test_args_are_substituted_and_manifest_is_a_valid_run() -> None:
    tpl = template(
        "t",
        args=[{"name": "service"}, {"name": "limit", "value": "2"}],
        metrics=[
            prom_metric(
                "rate",
                'x{service="{{args.service}}", s2="{{ args.service }}"}',
                failureLimit="{{args.limit}}",
                interval="30s",
            )
        ],
    )
    run = build(analysis("t", args=[{"name": "service", "value": "checkout"}]), [tpl], step_index=2)
    query = run["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
    assert query == 'x{service="checkout", s2="checkout"}'
    assert run["spec"]["metrics"][0]["failureLimit"] == "2"
    assert run["spec"]["args"] == [
        {"name": "service", "value": "checkout"},
        {"name": "limit", "value": "2"},
    ]
    parsed = load_analysis_run(run)
    assert parsed.spec.metrics[0].effective_failure_limit() == 2


def test_metadata_names_labels_and_owner() -> None:
    tpl = template("t", metrics=[prom_metric("m", "q")])
    run = build(analysis("t"), [tpl], kind="step", pod_hash="6d4f", step_index=3)
    meta = run["metadata"]
    assert meta["name"] == "web-6d4f-step-3"
    assert meta["namespace"] == "shop"
    assert meta["labels"] == {
        ROLLOUT_LABEL: "web",
        POD_TEMPLATE_HASH_LABEL: "6d4f",
        ANALYSIS_KIND_LABEL: "step",
        ANALYSIS_STEP_LABEL: "3",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "rollouts.dev/v1alpha1",
            "kind": "Rollout",
            "name": "web",
            "uid": "rollout-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    bg = build(analysis("t"), [tpl], kind="prePromotion", pod_hash="6d4f")
    assert bg["metadata"]["name"] == "web-6d4f-prepromotion"
    assert bg["metadata"]["labels"][ANALYSIS_KIND_LABEL] == "prePromotion"
    assert ANALYSIS_STEP_LABEL not in bg["metadata"]["labels"]


def test_same_inputs_same_manifest() -> None:
    tpl = template("t", metrics=[prom_metric("m", "q")])
    assert build(analysis("t"), [tpl]) == build(analysis("t"), [tpl])


def test_accepts_a_rollout_model() -> None:
    tpl = template("t", metrics=[prom_metric("m", "q")])
    run = build(analysis("t"), [tpl], rollout=Rollout.model_validate(ROLLOUT))
    assert run["metadata"]["ownerReferences"][0]["uid"] == "rollout-uid"


@pytest.mark.parametrize(
    ("rollout", "kind", "step", "attempt"),
    [
        ("a" * 80, "background", None, 0),
        ("my-very-long-rollout-name-that-goes-on-and-on-forever-x", "postPromotion", 12, 0),
        ("web", "step", 1, 2),
    ],
)
def test_run_names_are_dns_labels_and_keep_their_suffix(
    rollout: str, kind: Any, step: int | None, attempt: int
) -> None:
    name = analysis_run_name(rollout, "5f7c9d8b6", kind, step, attempt)
    assert len(name) <= 63
    assert name == name.lower()
    suffix = f"-5f7c9d8b6-{kind.lower()}" + (f"-{step}" if step is not None else "")
    suffix += f"-r{attempt}" if attempt else ""
    assert name.endswith(suffix)
    # Two long names differing only at the end stay distinct.
    if len(rollout) > 50:
        other = analysis_run_name(rollout + "b", "5f7c9d8b6", kind, step, attempt)
        assert other != name


def test_nested_templates_are_flattened_and_a_diamond_is_included_once() -> None:
    base = template("base", metrics=[prom_metric("base-metric", "b")])
    left = template(
        "left", metrics=[prom_metric("left", "l")], templates=[{"templateName": "base"}]
    )
    right = template(
        "right",
        metrics=[prom_metric("right", "r")],
        templates=[{"templateName": "base"}, {"templateName": "shared", "clusterScope": True}],
    )
    shared = template("shared", cluster=True, metrics=[prom_metric("shared", "s")])
    run = build(analysis("left", "right"), [base, left, right], [shared])
    names = [m["name"] for m in run["spec"]["metrics"]]
    assert names == ["left", "base-metric", "right", "shared"]


def test_cluster_scope_selects_the_cluster_template() -> None:
    local = template("t", metrics=[prom_metric("local", "l")])
    cluster = template("t", cluster=True, metrics=[prom_metric("cluster", "c")])
    run = build(analysis(("t", True)), [local], [cluster])
    assert [m["name"] for m in run["spec"]["metrics"]] == ["cluster"]


def test_cycle_is_an_error_naming_it() -> None:
    a = template("a", metrics=[prom_metric("a", "a")], templates=[{"templateName": "b"}])
    b = template("b", metrics=[prom_metric("b", "b")], templates=[{"templateName": "c"}])
    c = template("c", templates=[{"templateName": "a"}])
    with pytest.raises(InvalidSpecError) as err:
        build(analysis("a"), [a, b, c], field="spec.strategy.canary.steps[1].analysis")
    assert "cycle: a -> b -> c -> a" in err.value.message
    self_ref = template("s", metrics=[prom_metric("s", "s")], templates=[{"templateName": "s"}])
    with pytest.raises(InvalidSpecError, match="cycle: s -> s"):
        build(analysis("s"), [self_ref])


def test_missing_template_names_the_field() -> None:
    with pytest.raises(InvalidSpecError) as err:
        build(analysis("nope"), [], field="spec.strategy.canary.steps[1].analysis")
    assert err.value.field == "spec.strategy.canary.steps[1].analysis.templates[0]"
    assert "AnalysisTemplate 'nope' not found" in err.value.message
    with pytest.raises(InvalidSpecError, match="ClusterAnalysisTemplate 'x' not found"):
        build(analysis(("x", True)), [template("x", metrics=[prom_metric("m", "q")])])


def test_duplicate_metric_names_across_templates_are_an_error() -> None:
    one = template("one", metrics=[prom_metric("m", "1")])
    two = template("two", metrics=[prom_metric("m", "2")])
    with pytest.raises(InvalidSpecError, match="metric 'm' is defined twice"):
        build(analysis("one", "two"), [one, two])


def test_template_args_merge_and_conflict() -> None:
    one = template(
        "one", args=[{"name": "a", "value": "1"}], metrics=[prom_metric("m1", "{{args.a}}")]
    )
    same = template("same", args=[{"name": "a"}], metrics=[prom_metric("m2", "{{args.a}}")])
    run = build(analysis("one", "same"), [one, same])
    assert [m["provider"]["prometheus"]["query"] for m in run["spec"]["metrics"]] == ["1", "1"]
    other = template("other", args=[{"name": "a", "value": "2"}], metrics=[prom_metric("m3", "q")])
    with pytest.raises(InvalidSpecError, match="argument 'a' is given different values"):
        build(analysis("one", "other"), [one, other])


def test_rollout_args_override_template_defaults_and_extra_args_are_ignored() -> None:
    tpl = template(
        "t",
        args=[{"name": "threshold", "value": "0.95"}],
        metrics=[prom_metric("m", "{{args.threshold}}")],
    )
    run = build(
        analysis(
            "t", args=[{"name": "threshold", "value": "0.99"}, {"name": "unused", "value": "x"}]
        ),
        [tpl],
    )
    assert run["spec"]["metrics"][0]["provider"]["prometheus"]["query"] == "0.99"
    assert run["spec"]["args"] == [{"name": "threshold", "value": "0.99"}]


def test_missing_required_arg_names_it() -> None:
    tpl = template(
        "t", args=[{"name": "service-name"}], metrics=[prom_metric("m", "{{args.service-name}}")]
    )
    with pytest.raises(InvalidSpecError) as err:
        build(analysis("t"), [tpl])
    assert "'service-name'" in err.value.message
    assert "service-name" in err.value.field


def test_undeclared_placeholder_is_an_error() -> None:
    tpl = template("t", metrics=[prom_metric("m", "{{args.ghost}}")])
    with pytest.raises(InvalidSpecError, match=r"undeclared arguments: \{\{args.ghost\}\}"):
        build(analysis("t"), [tpl])


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"podTemplateHashValue": "Stable"}, "stable99"),
        ({"podTemplateHashValue": "Latest"}, "abc123"),
        ({"fieldRef": {"fieldPath": "metadata.labels['app']"}}, "web-app"),
        ({"fieldRef": {"fieldPath": 'metadata.labels["team"]'}}, "checkout"),
        ({"fieldRef": {"fieldPath": "metadata.annotations['owner']"}}, "sre@example.com"),
        ({"fieldRef": {"fieldPath": "metadata.name"}}, "web"),
        ({"fieldRef": {"fieldPath": "metadata.namespace"}}, "shop"),
    ],
)
def test_value_from_in_rollout_args(source: dict[str, Any], expected: str) -> None:
    tpl = template("t", args=[{"name": "x"}], metrics=[prom_metric("m", "v={{args.x}}")])
    run = build(
        analysis("t", args=[{"name": "x", "valueFrom": source}]), [tpl], stable_hash="stable99"
    )
    assert run["spec"]["metrics"][0]["provider"]["prometheus"]["query"] == f"v={expected}"
    assert run["spec"]["args"] == [{"name": "x", "value": expected}]


def test_latest_hash_can_differ_from_the_judged_hash() -> None:
    tpl = template("t", args=[{"name": "x"}], metrics=[prom_metric("m", "{{args.x}}")])
    ref = analysis("t", args=[{"name": "x", "valueFrom": {"podTemplateHashValue": "Latest"}}])
    run = build(ref, [tpl], latest_hash="newest")
    assert run["spec"]["metrics"][0]["provider"]["prometheus"]["query"] == "newest"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"podTemplateHashValue": "Stable"}, "no Stable pod template hash"),
        ({"fieldRef": {"fieldPath": "metadata.labels['missing']"}}, "has nothing at"),
        ({"fieldRef": {"fieldPath": "spec.replicas"}}, "unsupported fieldPath"),
    ],
)
def test_value_from_that_cannot_resolve_names_the_arg(source: dict[str, Any], message: str) -> None:
    tpl = template("t", args=[{"name": "x"}], metrics=[prom_metric("m", "{{args.x}}")])
    with pytest.raises(InvalidSpecError) as err:
        build(analysis("t", args=[{"name": "x", "valueFrom": source}]), [tpl], field="spec.x")
    assert err.value.field == "spec.x.args[0]"
    assert "'x'" in err.value.message and message in err.value.message


def test_secret_args_stay_references_and_placeholders() -> None:
    tpl = template(
        "t",
        args=[
            {"name": "token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "service", "value": "web"},
        ],
        metrics=[
            {
                "name": "web-check",
                "successCondition": "result == true",
                "provider": {
                    "web": {
                        "url": "http://svc/{{args.service}}?token={{ args.token }}",
                        "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}],
                    }
                },
            }
        ],
    )
    run = build(analysis("t"), [tpl])
    web = run["spec"]["metrics"][0]["provider"]["web"]
    assert web["url"] == "http://svc/web?token={{ args.token }}"
    assert web["headers"][0]["value"] == "Bearer {{args.token}}"
    assert run["spec"]["args"][0] == {
        "name": "token",
        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}},
    }
    assert "value" not in run["spec"]["args"][0]
    load_analysis_run(run)


def test_rollout_value_overrides_a_secret_backed_template_arg() -> None:
    tpl = template(
        "t",
        args=[{"name": "token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
        metrics=[prom_metric("m", "{{args.token}}")],
    )
    run = build(analysis("t", args=[{"name": "token", "value": "public"}]), [tpl])
    assert run["spec"]["metrics"][0]["provider"]["prometheus"]["query"] == "public"


def test_dry_run_and_retention_are_merged_with_rollout_winning() -> None:
    tpl = template(
        "t",
        metrics=[prom_metric("a", "a"), prom_metric("b", "b")],
        dryRun=[{"metricName": "a"}],
        measurementRetention=[{"metricName": "a", "limit": 5}],
    )
    ref = analysis(
        "t",
        dryRun=[{"metricName": "b"}],
        measurementRetention=[{"metricName": "a", "limit": 20}],
    )
    run = build(ref, [tpl])
    assert run["spec"]["dryRun"] == [{"metricName": "a"}, {"metricName": "b"}]
    assert run["spec"]["measurementRetention"] == [{"metricName": "a", "limit": 20}]
    parsed = load_analysis_run(run)
    assert parsed.spec.is_dry_run("a") and parsed.spec.is_dry_run("b")
    assert parsed.spec.retention_limit("a") == 20


def test_invalid_after_substitution_is_an_error() -> None:
    tpl = template(
        "t",
        args=[{"name": "n", "value": "many"}],
        metrics=[prom_metric("m", "q", failureLimit="{{args.n}}")],
    )
    with pytest.raises(InvalidSpecError, match=r"spec\.metrics\[0\]\.failureLimit"):
        build(analysis("t"), [tpl])


def test_substitution_helpers() -> None:
    doc = {"a": "{{args.x}}-{{ args.y }}", "b": ["{{args.x}}", 3], "{{args.x}}": "k"}
    assert substitute_args(doc, {"x": "1", "y": "2"}) == {
        "a": "1-2",
        "b": ["1", 3],
        "{{args.x}}": "k",
    }
    assert placeholders(doc) == {"x", "y"}
    assert json.dumps(substitute_args(doc, {})) == json.dumps(doc)


ARG_FIELDS = {
    "interval": ("analysis-interval", "30s", 30, "soon"),
    "initialDelay": ("delay", "1m", 60, "later"),
}


@pytest.mark.parametrize("field", sorted(ARG_FIELDS))
def test_durations_may_be_args_and_are_checked_after_substitution(field: str) -> None:
    arg, good, seconds, bad = ARG_FIELDS[field]
    tpl = template(
        "t",
        args=[{"name": arg}],
        metrics=[prom_metric("m", "q", **{field: f"{{{{args.{arg}}}}}", "count": 3,
                                          "interval": f"{{{{args.{arg}}}}}"})],
    )
    run = build(analysis("t", args=[{"name": arg, "value": good}]), [tpl])
    metric = load_analysis_run(run).spec.metrics[0]
    assert metric.interval_seconds() == seconds
    with pytest.raises(InvalidSpecError) as caught:
        build(analysis("t", args=[{"name": arg, "value": bad}]), [tpl])
    assert f"{{{{args.{arg}}}}}" in str(caught.value) and repr(bad) in str(caught.value)


@pytest.mark.parametrize(
    "field", ["count", "failureLimit", "inconclusiveLimit", "consecutiveErrorLimit"]
)
def test_limits_given_as_args_name_the_arg_when_bad(field: str) -> None:
    tpl = template(
        "t",
        args=[{"name": "lim"}],
        metrics=[prom_metric("m", "q", interval="1m", **{field: "{{args.lim}}"})],
    )
    run = build(analysis("t", args=[{"name": "lim", "value": "3"}]), [tpl])
    assert load_analysis_run(run).spec.metrics[0].model_dump(by_alias=True)[field] == "3"
    with pytest.raises(InvalidSpecError, match=r"\{\{args\.lim\}\}"):
        build(analysis("t", args=[{"name": "lim", "value": "-7"}]), [tpl])


def test_provider_fields_are_substituted_and_unresolved_duration_refuses_to_be_read() -> None:
    tpl = template(
        "t",
        args=[{"name": "step"}, {"name": "addr"}],
        metrics=[{
            "name": "m",
            "provider": {"prometheus": {"address": "{{args.addr}}", "query": "q",
                                        "rangeQuery": {"start": "now-5m", "end": "now",
                                                       "step": "{{args.step}}"}}},
        }],
    )
    run = build(analysis("t", args=[{"name": "step", "value": "1m"},
                                    {"name": "addr", "value": "http://p:9090"}]), [tpl])
    prom = load_analysis_run(run).spec.metrics[0].provider.prometheus
    assert prom is not None and prom.address == "http://p:9090"
    assert prom.range_query is not None and prom.range_query.step == "1m"
    raw = tpl.spec.metrics[0].model_copy(update={"interval": "{{args.i}}"})
    with pytest.raises(InvalidSpecError, match=r"interval.*unresolved argument"):
        raw.interval_seconds()


def test_schedule_fields_cannot_come_from_secret_args() -> None:
    tpl = template(
        "t",
        args=[{"name": "tok", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        metrics=[prom_metric("m", "q", interval="{{args.tok}}")],
    )
    with pytest.raises(InvalidSpecError, match=r"interval cannot come from a Secret-backed"):
        build(analysis("t"), [tpl])


def test_a_dry_run_or_retention_rule_matching_no_metric_is_named_where_written() -> None:
    """Argo refuses a run whose rule matches no metric; we say so when building it, naming
    the Rollout's own rule, or the templates when theirs is wrong. Rules are regexes."""
    tpl = template("t", metrics=[prom_metric("error-rate", "a"), prom_metric("latency", "b")])
    with pytest.raises(InvalidSpecError) as caught:
        build(analysis("t", measurementRetention=[{"metricName": "rate", "limit": 3},
                                                  {"metricName": "^typo$", "limit": 3}]),
              [tpl], field="spec.strategy.canary.analysis")
    assert caught.value.field == "spec.strategy.canary.analysis.measurementRetention[1].metricName"
    assert "'^typo$' matches no metric of the templates (metrics: error-rate, latency)" in (
        caught.value.message)
    bad = template("t", metrics=[prom_metric("m", "q")], dryRun=[{"metricName": "other"}])
    with pytest.raises(InvalidSpecError, match=r"dryRun rule 'other' matches no metric"):
        build(analysis("t"), [bad])
    run = build(analysis("t", dryRun=[{"metricName": "^lat"}]), [tpl])
    parsed = load_analysis_run(run)
    assert [m.name for m in parsed.spec.metrics if parsed.spec.is_dry_run(m.name)] == ["latency"]
