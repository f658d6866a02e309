"""Build examples/gitops/argocd/argocd-cm.yaml from the Lua scripts next to it.

    PYTHONPATH=$PWD python3 -m tests.gitops.argocd_cm

The scripts are the source (each tested on its own); the ConfigMap is what users apply.
"""

from __future__ import annotations

import pathlib
from typing import Any

import yaml

ARGOCD = pathlib.Path(__file__).resolve().parents[2] / "examples" / "gitops" / "argocd"
ACTIONS = ("promote", "promote-full", "abort", "retry", "pause", "resume")
HEALTH_KEY = "resource.customizations.health.rollouts.dev_Rollout"
ACTIONS_KEY = "resource.customizations.actions.rollouts.dev_Rollout"
HEADER = """\
# Argo CD settings for rollouts.dev Rollouts: health and actions (merge into your argocd-cm).
# Generated from health.lua and actions/*.lua in this directory; tests/gitops/test_argocd.py
# fails when this file and the scripts differ (regenerate: python3 -m tests.gitops.argocd_cm).
"""


class _Literal(str):
    """A string dumped as a YAML block scalar (`|`), so the Lua stays readable."""


class _Dumper(yaml.SafeDumper):
    pass


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> Any:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


_Dumper.add_representer(_Literal, _literal)


def script(path: str) -> str:
    return (ARGOCD / path).read_text()


def build() -> str:
    actions = {
        "discovery.lua": _Literal(script("actions/discovery.lua")),
        "definitions": [{"name": name, "action.lua": _Literal(script(f"actions/{name}.lua"))}
                        for name in ACTIONS],
    }
    config = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": "argocd",
                     "labels": {"app.kubernetes.io/part-of": "argocd"}},
        "data": {
            HEALTH_KEY: _Literal(script("health.lua")),
            ACTIONS_KEY: _Literal(yaml.dump(actions, Dumper=_Dumper, sort_keys=False,
                                            width=200)),
        },
    }
    return HEADER + yaml.dump(config, Dumper=_Dumper, sort_keys=False, width=200)


if __name__ == "__main__":
    (ARGOCD / "argocd-cm.yaml").write_text(build())
