"""`rollouts lint` warns when a Service a Rollout names declares spec.selector (the GitOps
fight over an atomic map, issue 8), and only then."""

from __future__ import annotations

import pathlib

import pytest
from typer.testing import CliRunner

from rollouts.cli.main import app

ROLLOUT = """\
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata: {name: web%(ns)s}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "app:1"}]}
  strategy:
    %(strategy)s
"""
CANARY = "canary: {canaryService: web-canary, stableService: web-stable, steps: [{setWeight: 50}]}"
BLUE_GREEN = "blueGreen: {activeService: web-active, previewService: web-preview}"


def service(name: str, *, selector: bool, namespace: str = "") -> str:
    ns = f", namespace: {namespace}" if namespace else ""
    spec = "selector: {app: web}, " if selector else ""
    return f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}{ns}}}\n" \
           f"spec: {{{spec}ports: [{{port: 80}}]}}\n"


def lint(tmp_path: pathlib.Path, *docs: str) -> tuple[int, list[str], str]:
    path = tmp_path / "app.yaml"
    path.write_text("---\n".join(docs))
    result = CliRunner().invoke(app, ["lint", str(path)])
    return result.exit_code, result.stdout.splitlines(), result.stderr


@pytest.mark.parametrize(("strategy", "services", "field"), [
    (CANARY, ("web-canary", "web-stable"), "spec.strategy.canary.canaryService"),
    (BLUE_GREEN, ("web-active", "web-preview"), "spec.strategy.blueGreen.activeService"),
])
def test_named_services_with_a_selector_are_warned(tmp_path: pathlib.Path, strategy: str,
                                                   services: tuple[str, str],
                                                   field: str) -> None:
    code, out, err = lint(tmp_path, *(service(s, selector=True) for s in services),
                          service("other", selector=True),
                          ROLLOUT % {"ns": "", "strategy": strategy})
    assert code == 0  # a warning, not an error
    assert len(out) == 2, out  # "other" is not named by the Rollout
    first = out[0]
    assert first.startswith(f"{tmp_path / 'app.yaml'}:doc 1: warning: spec.selector: "
                            f"declares spec.selector, but Rollout web ({field}) owns")
    for text in ("atomic map", "server-side apply", "rollouts-pod-template-hash",
                 "remove spec.selector", "docs/gitops.md"):
        assert text in first
    assert "2 warning(s)" in err


def test_selectorless_services_pass(tmp_path: pathlib.Path) -> None:
    code, out, _ = lint(tmp_path, service("web-canary", selector=False),
                        service("web-stable", selector=False),
                        ROLLOUT % {"ns": "", "strategy": CANARY})
    assert (code, out) == (0, [])


def test_a_service_of_another_namespace_is_not_the_named_one(tmp_path: pathlib.Path) -> None:
    code, out, _ = lint(tmp_path, service("web-canary", selector=True, namespace="b"),
                        service("web-stable", selector=True, namespace="a"),
                        ROLLOUT % {"ns": ", namespace: a", "strategy": CANARY})
    assert code == 0
    assert [line.split(":doc ")[1][:1] for line in out] == ["2"]
