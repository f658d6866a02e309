"""Regressions found by running `convert` + `lint` over Argo Rollouts' own example trees
(bench/argo_corpus.py, docs/argo-compat.md). The manifests here are minimal ones of our own."""

from __future__ import annotations

import pathlib

from typer.testing import CliRunner

from rollouts.cli.main import app

EXPERIMENT = """\
apiVersion: {api}
kind: Experiment
metadata:
  {name_key}: smoke-
spec:
  duration: 1m
  templates:
  - name: probe
    selector: {{matchLabels: {{app: probe}}}}
    template:
      metadata: {{labels: {{app: probe}}}}
      spec:
        containers: [{{name: web, image: "nginx:1"}}]
"""

TEMPLATE = """\
apiVersion: rollouts.dev/v1alpha1
kind: AnalysisTemplate
metadata:
  {name_key}: check-
spec:
  metrics:
  - name: up
    provider: {{web: {{url: "http://example.invalid/health"}}}}
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_generate_name_stands_in_for_a_name(tmp_path: pathlib.Path) -> None:
    # `kubectl create` names an object from metadata.generateName: lint must not demand a name.
    path = tmp_path / "m.yaml"
    path.write_text(EXPERIMENT.format(api="rollouts.dev/v1alpha1", name_key="generateName")
                    + "---\n" + TEMPLATE.format(name_key="generateName"))
    code, out, err = run("lint", str(path))
    assert code == 0, out + err
    assert "metadata.name" not in out


def test_generate_name_is_kept_by_convert(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "argo.yaml"
    path.write_text(EXPERIMENT.format(api="argoproj.io/v1alpha1", name_key="generateName"))
    code, out, err = run("convert", str(path))
    assert code == 0, err
    assert "generateName: smoke-" in out
    assert "rollouts.dev/v1alpha1" in out


def test_neither_name_nor_generate_name_is_still_an_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(TEMPLATE.format(name_key="labels"))
    code, out, _ = run("lint", str(path))
    assert code == 1
    assert "metadata.name: a name (or generateName) is required" in out
