"""`lint` and `convert` on the sample manifests in tests/cli/data (no cluster)."""

from __future__ import annotations

import pathlib

import yaml
from typer.testing import CliRunner

from rollouts.cli.main import app
from rollouts.models.rollout import rollout_manifest_errors

DATA = pathlib.Path(__file__).parent / "data"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_lint_clean_file() -> None:
    code, out, err = run("lint", str(DATA / "good.yaml"))
    assert code == 0, out
    assert out == ""
    assert "3 document(s) checked: 0 error(s)" in err


def test_lint_reports_every_problem_with_file_doc_and_path() -> None:
    code, out, _ = run("lint", str(DATA / "bad.yaml"))
    assert code == 1
    bad = str(DATA / "bad.yaml")
    lines = out.splitlines()
    expected = [
        f"{bad}:doc 1: spec.strategy.canary.steps[0]: setWeight and pause cannot be combined "
        "in one step: a step has at most one of setWeight, pause, analysis, experiment, plugin "
        "(setCanaryScale, setHeaderRoute and setMirrorRoute may go with any of them)",
        f"{bad}:doc 1: warning: spec.strategy.canary.steps[1].setWeight: weight goes down",
        f'{bad}:doc 1: spec.strategy.canary.steps[2].analysis.templates[1].templateName: '
        'AnalysisTemplate "missing" is not in the files given',
        f"{bad}:doc 2: spec.metrics[1].provider: unsupported metric provider kayenta",
        f"{bad}:doc 2: spec.metrics[0].successCondition: unexpected end of input",
        f"{bad}:doc 2: spec.metrics[1].failureCondition: unexpected end of input at position 13 "
        "in 'result > 0 &&' (placeholders replaced by 0)",
        f"{bad}:doc 3: apiVersion: argoproj.io/v1alpha1 is Argo Rollouts",
    ]
    for prefix in expected:
        assert any(line.startswith(prefix) for line in lines), prefix
    assert "trafficRouting" not in out  # supported (NGINX here)


def test_lint_resolves_templates_across_files_and_checks_args() -> None:
    code, out, _ = run("lint", str(DATA / "good.yaml"), str(DATA / "bad.yaml"))
    assert code == 1
    assert '"success-rate" is not in the files given' not in out
    assert 'ClusterAnalysisTemplate "always-ok" is not in the files given' not in out
    assert ('spec.strategy.canary.steps[2].analysis.args: argument "service" required by '
            'AnalysisTemplate "success-rate" is not provided') in out
    # "threshold" has a default value in the template: not required.
    assert '"threshold"' not in out


def test_lint_directory_and_warnings_only(tmp_path: pathlib.Path) -> None:
    (tmp_path / "sub").mkdir()
    doc = yaml.safe_load_all((DATA / "good.yaml").read_text())
    rollout = next(d for d in doc if d["kind"] == "Rollout")
    rollout["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 50}, {"setWeight": 10}]
    (tmp_path / "sub" / "r.yml").write_text(yaml.safe_dump(rollout))
    (tmp_path / "notes.txt").write_text("not yaml: [")
    code, out, err = run("lint", str(tmp_path))
    assert code == 0  # warnings do not fail
    assert "warning: spec.strategy.canary.steps[1].setWeight: weight goes down from 50 to 10" \
        in out
    assert "1 document(s) checked: 0 error(s), 1 warning(s)" in err


def test_lint_unreadable_inputs(tmp_path: pathlib.Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    code, out, _ = run("lint", str(broken), str(tmp_path / "missing.yaml"))
    assert code == 1
    assert f"{broken}:doc 1: <yaml>: invalid YAML" in out
    assert f"{tmp_path / 'missing.yaml'}: <file>: no such file" in out


def test_convert_reports_unsupported_fields() -> None:
    code, out, err = run("convert", str(DATA / "argo.yaml"))
    assert code == 1
    docs = list(yaml.safe_load_all(out))
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("v1", "Service"),
        ("rollouts.dev/v1alpha1", "Rollout"),
        ("rollouts.dev/v1alpha1", "AnalysisTemplate"),
        ("rollouts.dev/v1alpha1", "Experiment"),
    ]
    # trafficRouting (Istio here) is supported: kept as is and not reported.
    assert "trafficRouting" in docs[1]["spec"]["strategy"]["canary"]
    argo = str(DATA / "argo.yaml")
    assert "trafficRouting" not in err
    assert f"unsupported: {argo}:doc 3: spec.metrics[0].provider: unsupported metric provider" \
        in err
    # An Experiment converts and is validated like the rest (this one has no template): a
    # value we would reject is "invalid", not "unsupported" (the field is one we run).
    assert f"invalid: {argo}:doc 4: spec.templates: List should have at least 1 item" in err
    assert "unsupported: " + f"{argo}:doc 4" not in err


def test_convert_clean_manifest_round_trips() -> None:
    code, out, err = run("convert", str(DATA / "argo-clean.yaml"))
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    source = list(yaml.safe_load_all((DATA / "argo-clean.yaml").read_text()))
    assert [d["apiVersion"] for d in docs] == ["rollouts.dev/v1alpha1"] * 2
    # apiVersion is the only change.
    assert [{**d, "apiVersion": None} for d in docs] == [{**d, "apiVersion": None}
                                                         for d in source]
    assert rollout_manifest_errors(docs[0]["spec"]) == []


def test_convert_output_lints_clean(tmp_path: pathlib.Path) -> None:
    code, out, _ = run("convert", str(DATA / "argo-clean.yaml"))
    assert code == 0
    (tmp_path / "converted.yaml").write_text(out)
    assert run("lint", str(tmp_path / "converted.yaml"))[0] == 0


def test_lint_accepts_arg_durations_and_checks_them_with_the_rollouts_values(
    tmp_path: pathlib.Path,
) -> None:
    good = DATA / "args-interval.yaml"
    code, out, _ = run("lint", str(good))
    assert code == 0, out
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("value: 30s", "value: soon"))
    code, out, _ = run("lint", str(bad))
    assert code == 1
    assert "spec.metrics[0].interval" in out and "{{args.analysis-interval}}" in out
    assert "'soon'" in out


def test_convert_keeps_every_supported_vendor_provider(tmp_path: pathlib.Path) -> None:
    code, out, err = run("convert", str(DATA / "argo-providers.yaml"))
    assert code == 0, err
    assert "unsupported" not in err
    [doc] = list(yaml.safe_load_all(out))
    source = yaml.safe_load((DATA / "argo-providers.yaml").read_text())
    assert doc["apiVersion"] == "rollouts.dev/v1alpha1"
    assert doc["spec"] == source["spec"]
    converted = tmp_path / "converted.yaml"
    converted.write_text(out)
    code, out, err = run("lint", str(converted))
    assert code == 0, out + err
