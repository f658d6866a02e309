"""`rollouts set image` and `rollouts undo` against the API emulator (no controller)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rollouts.cli.kubeopts import CliError
from rollouts.cli.release import undo_template, with_images
from tests.cli.conftest import CANARY_SPEC, GROUP, HEALTHY, VERSION, Sandbox

TWO_CONTAINERS = {"spec": {"initContainers": [{"name": "init", "image": "init:1"}],
                           "containers": [{"name": "web", "image": "web:1"},
                                          {"name": "proxy", "image": "proxy:1"}]}}


def test_with_images_changes_named_and_star() -> None:
    template, lines = with_images(TWO_CONTAINERS, [("proxy", "proxy:2")])
    assert lines == ["proxy: proxy:1 -> proxy:2"]
    assert template["spec"]["containers"][1]["image"] == "proxy:2"
    assert TWO_CONTAINERS["spec"]["containers"][1]["image"] == "proxy:1"  # not mutated
    _, lines = with_images(TWO_CONTAINERS, [("*", "all:9")])
    assert len(lines) == 3
    assert with_images(TWO_CONTAINERS, [("web", "web:1")])[1] == []
    with pytest.raises(CliError, match=r"no container 'db'.*init, web, proxy"):
        with_images(TWO_CONTAINERS, [("db", "db:2")])


def test_set_image_writes_the_spec_and_warns(sandbox: Sandbox) -> None:
    sandbox.rollout(status=HEALTHY)
    before = sandbox.read()
    result = sandbox.invoke("set", "image", "web", "web=example/web:3")
    assert result.exit_code == 0, result.output
    assert "rollout web image updated" in result.output
    assert "web: example/web:2 -> example/web:3" in result.output
    assert "GitOps" in result.output and "commit the change to Git" in result.output
    after = sandbox.read()
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "example/web:3"
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["status"] == before["status"]  # the status subresource is untouched
    assert {k[0] for k in sandbox.emulator.requests if k[0] in ("update", "patch")} >= {"update"}


def test_set_image_errors(sandbox: Sandbox) -> None:
    sandbox.rollout(status=HEALTHY)
    bad = sandbox.invoke("set", "image", "web", "example/web:3")
    assert bad.exit_code == 2 and "expected CONTAINER=IMAGE" in bad.output
    unknown = sandbox.invoke("set", "image", "web", "db=x:1")
    assert unknown.exit_code == 1 and "no container 'db'" in unknown.output
    missing = sandbox.invoke("set", "image", "nope", "web=x:1")
    assert missing.exit_code == 1 and "not found" in missing.output
    same = sandbox.invoke("set", "image", "web", "web=example/web:2")
    assert same.exit_code == 0 and "unchanged" in same.output


def test_help_says_the_change_belongs_in_git(sandbox: Sandbox) -> None:
    for command in (["set", "image", "--help"], ["undo", "--help"], ["restart", "--help"]):
        text = " ".join(sandbox.invoke(*command).output.split())
        assert "GitOps" in text and "commit the change to Git" in text


def _replica_set(sandbox: Sandbox, rollout: dict[str, Any], image: str, pod_hash: str,
                 revision: int) -> None:
    sandbox.replica_set(rollout, pod_hash, revision, 0, 0)
    sandbox.emulator.patch_object(
        "apps", "v1", "replicasets", sandbox.namespace,
        f"{rollout['metadata']['name']}-{pod_hash}",
        {"spec": {"template": {"metadata": {"labels": {
            "app": "web", "rollouts-pod-template-hash": pod_hash}},
            "spec": {"containers": [{"name": "web", "image": image}]}}}})


def test_undo_goes_back_one_revision_or_to_a_named_one(sandbox: Sandbox) -> None:
    rollout = sandbox.rollout(status=HEALTHY)
    _replica_set(sandbox, rollout, "example/web:0", "h0", 1)
    _replica_set(sandbox, rollout, "example/web:1", "h1", 2)
    _replica_set(sandbox, rollout, "example/web:2", "h2", 3)
    result = sandbox.invoke("undo", "web")
    assert result.exit_code == 0, result.output
    assert "rollout web rolled back" in result.output and "revision 2" in result.output
    assert "commit the change to Git" in " ".join(result.output.split())
    template = sandbox.read()["spec"]["template"]
    assert template == {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}}
    assert sandbox.invoke("undo", "web", "--to-revision", "1").exit_code == 0
    assert sandbox.read()["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "example/web:0")
    missing = sandbox.invoke("undo", "web", "--to-revision", "7")
    assert missing.exit_code == 1 and "revision 7 not found (revisions: 1, 2, 3)" in (
        missing.output)


def test_undo_refuses_without_history() -> None:
    rollout = {"spec": copy.deepcopy(CANARY_SPEC)}
    with pytest.raises(CliError, match="no earlier revision"):
        undo_template(rollout, [], None)


def test_undo_ignores_replica_sets_of_other_rollouts(sandbox: Sandbox) -> None:
    rollout = sandbox.rollout(status=HEALTHY)
    other = sandbox.rollout("other", status=HEALTHY)
    _replica_set(sandbox, rollout, "example/web:2", "h2", 2)
    _replica_set(sandbox, other, "example/web:1", "o1", 1)
    result = sandbox.invoke("undo", "web")
    assert result.exit_code == 1 and "no earlier revision" in result.output
    web = sandbox.emulator.get_object(GROUP, VERSION, "rollouts", sandbox.namespace, "web")
    assert web is not None and web["metadata"]["generation"] == 1


def test_controller_refuses_a_notifications_secret_without_its_configmap(
        sandbox: Sandbox) -> None:
    from rollouts.cli.main import app

    result = sandbox.runner.invoke(app, ["controller", "--kubeconfig", str(sandbox.kubeconfig),
                                         "--notifications-secret", "urls"])
    assert result.exit_code != 0
    assert "--notifications-secret needs --notifications-configmap" in str(
        result.exception) + result.output
    wide = sandbox.runner.invoke(app, ["controller", "--help"], env={"COLUMNS": "200"})
    help_text = " ".join(wide.output.split())
    assert "--notifications-configmap" in help_text and "--notifications-secret" in help_text


def test_a_workload_ref_rollout_is_changed_through_its_deployment(sandbox: Sandbox) -> None:
    spec = {k: v for k, v in copy.deepcopy(CANARY_SPEC).items()
            if k not in ("template", "selector")}
    spec["workloadRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-deploy"}
    sandbox.rollout(spec=spec)
    for command in (["set", "image", "web", "web=x:2"], ["undo", "web"]):
        result = sandbox.invoke(*command)
        assert result.exit_code == 1, result.output
        assert "takes its pod template from Deployment web-deploy" in " ".join(
            result.output.split())
    assert "template" not in sandbox.read()["spec"]
