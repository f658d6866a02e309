"""`convert` and `lint` accept Argo manifests that route traffic (tests/cli/data/routers: one
per router, in Argo's form), and name what they cannot accept."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from tests.cli.test_lint_convert import run

ROUTERS = pathlib.Path(__file__).parent / "data" / "routers"
FILES = sorted(ROUTERS.glob("*.yaml"))


def test_one_manifest_per_router() -> None:
    names = {p.stem for p in FILES}
    assert {"gatewayapi", "istio", "nginx", "alb", "smi", "traefik", "apisix", "ambassador",
            "appmesh"} <= names


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_convert_then_lint_is_clean(path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    code, out, err = run("convert", str(path))
    assert code == 0, err
    before = list(yaml.safe_load_all(path.read_text()))
    after = list(yaml.safe_load_all(out))
    for old, new in zip(before, after, strict=True):
        if old["apiVersion"] == "argoproj.io/v1alpha1":
            assert new.pop("apiVersion") == "rollouts.dev/v1alpha1"
            old.pop("apiVersion")
        assert new == old  # nothing else changed, nothing dropped
    converted = tmp_path / "converted.yaml"
    converted.write_text(out)
    code, out, err = run("lint", str(converted))
    assert code == 0, out
    assert "0 error(s)" in err
    # The routers run: the only warnings left are fields the controller does not run yet
    # (pod metadata, ...), each named.
    assert all(": warning: spec.strategy.canary." in line and "does not run it yet" in line
               for line in out.splitlines()), out


def test_unknown_plugin_and_missing_managed_route_are_named(tmp_path: pathlib.Path) -> None:
    doc = next(yaml.safe_load_all((ROUTERS / "gatewayapi.yaml").read_text()))
    routing = doc["spec"]["strategy"]["canary"]["trafficRouting"]
    routing["plugins"]["acme/mesh"] = {"route": "x"}
    routing["managedRoutes"] = [{"name": "beta-users"}]
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, _, err = run("convert", str(path))
    assert code == 1
    assert ('spec.strategy.canary.trafficRouting.plugins["acme/mesh"]: unknown traffic router '
            'plugin "acme/mesh"') in err
    assert ('spec.strategy.canary.steps[2].setMirrorRoute.name: route "shadow-posts" is not '
            "listed in spec.strategy.canary.trafficRouting.managedRoutes") in err


def test_full_weight_warning_follows_max_traffic_weight(tmp_path: pathlib.Path) -> None:
    doc = next(yaml.safe_load_all((ROUTERS / "nginx.yaml").read_text()))
    doc["apiVersion"] = "rollouts.dev/v1alpha1"
    canary = doc["spec"]["strategy"]["canary"]
    assert canary["trafficRouting"]["maxTrafficWeight"] == 1000
    canary["steps"] = [{"setWeight": 100}, {"pause": {}}, {"setWeight": 1000}, {"pause": {}},
                       {"setWeight": 1000}]
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, out, _ = run("lint", str(path))
    assert code == 0
    assert [line for line in out.splitlines() if "step after" in line] == [
        f"{path}:doc 1: warning: spec.strategy.canary.steps[4]: step after setWeight: 1000 "
        "(the canary already has all traffic)"]
