"""`lint` and `convert` on hostile and malformed input: clear errors, no tracebacks.

Each case here was once a traceback, a hang, a silent pass or a lost comment.
"""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from rollouts.cli import convert as convert_module
from rollouts.cli import lint as lint_module
from rollouts.cli.main import app
from rollouts.cli.manifests import MAX_EXPANDED

DATA = pathlib.Path(__file__).parent / "data"
ROLLOUT: dict[str, Any] = next(
    d for d in yaml.safe_load_all((DATA / "good.yaml").read_text()) if d["kind"] == "Rollout"
)
ALIAS_BOMB = "\n".join(
    ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
) + "\n"


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: pathlib.Path, *docs: Any, name: str = "m.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


def rollout(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(ROLLOUT)
    for dotted, value in changes.items():
        target = doc
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return doc


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text and "internal error" not in text


# --- Pod templates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "path", "fragment"),
    [
        ({"resources": {"limits": {"memory": "invalid"}}},
         "containers[0].resources.limits.memory", "not a valid quantity"),
        ({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}},
         "containers[0].resources.requests.cpu", "less than or equal to the cpu limit"),
        ({"resources": {"requests": {"memory": "-1Gi"}}},
         "containers[0].resources.requests.memory", "greater than or equal to 0"),
        ({"name": "Web_Server"}, "containers[0].name", "not a valid container name"),
        ({"ports": [{"containerPort": 70000}]}, "containers[0].ports[0].containerPort",
         "between 1 and 65535"),
        ({"ports": [{"containerPort": "http"}]}, "containers[0].ports[0].containerPort",
         "must be of type integer"),
        ({"ports": [{"containerPort": 80, "protocol": "HTTP"}]},
         "containers[0].ports[0].protocol", "must be one of TCP, UDP, SCTP"),
        ({"ports": [{"containerPort": 80, "name": "http_port"}]},
         "containers[0].ports[0].name", "not a valid port name"),
        ({"livenessProbe": {"periodSeconds": 5}}, "containers[0].livenessProbe",
         "needs exactly one of exec, httpGet, tcpSocket, grpc (got none)"),
        ({"readinessProbe": {"httpGet": {"path": "/", "port": 0}}},
         "containers[0].readinessProbe.httpGet.port", "between 1 and 65535"),
        ({"livenessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2}},
         "containers[0].livenessProbe.successThreshold", "must be 1"),
        ({"imagePullPolicy": "Always", "imagePulPolicy": "x"}, "containers[0]",
         "unknown field(s) ('imagePulPolicy' was unexpected)"),
        ({"image": None}, "containers[0].image", "an image is required"),
    ],
)
def test_lint_checks_the_pod_template(tmp_path: pathlib.Path, container: dict[str, Any],
                                      path: str, fragment: str) -> None:
    doc = rollout()
    doc["spec"]["template"]["spec"]["containers"][0].update(container)
    code, out, err = run("lint", write(tmp_path, doc))
    assert code == 1
    assert f"spec.template.spec.{path}: " in out and fragment in out, out
    no_traceback(out, err)


def test_lint_checks_the_pods_of_job_metrics(tmp_path: pathlib.Path) -> None:
    template = {
        "apiVersion": "rollouts.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "smoke"},
        "spec": {"metrics": [{"name": "smoke", "provider": {"job": {"spec": {
            "backoffLimit": 1,
            "template": {"spec": {"containers": [{"name": "t", "image": "curl",
                                                  "resources": {"limits": {"cpu": "lots"}}}]}},
        }}}}]},
    }
    code, out, _ = run("lint", write(tmp_path, template))
    assert code == 1
    base = "spec.metrics[0].provider.job.spec.template.spec"
    assert f"{base}.containers[0].resources.limits.cpu: 'lots' is not a valid quantity" in out
    assert f"{base}.restartPolicy: a Job's pods need restartPolicy OnFailure or Never" in out


def test_valid_resources_and_probes_pass(tmp_path: pathlib.Path) -> None:
    doc = rollout()
    doc["spec"]["template"]["spec"]["containers"][0].update({
        "ports": [{"name": "http", "containerPort": 8080}],
        "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                      "limits": {"cpu": 1, "memory": "1Gi", "ephemeral-storage": "2e9"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2},
        "livenessProbe": {"tcpSocket": {"port": 8080}},
    })
    code, out, err = run("lint", write(tmp_path, doc))
    assert (code, out) == (0, ""), err


# --- every error at once ----------------------------------------------------------------------


def test_lint_reports_field_errors_and_selector_mismatch_together(
        tmp_path: pathlib.Path) -> None:
    doc = rollout(spec__replicas="many")
    doc["spec"]["selector"]["matchLabels"] = {"app": "other"}
    doc["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "x"}}
    code, out, _ = run("lint", write(tmp_path, doc))
    assert code == 1
    assert "spec.replicas: Input should be a valid integer" in out
    assert "spec.selector.matchLabels: app=other does not match spec.template.metadata.labels" \
        in out
    assert "resources.limits.memory: 'x' is not a valid quantity" in out


def test_negative_replicas_is_an_error(tmp_path: pathlib.Path) -> None:
    code, out, _ = run("lint", write(tmp_path, rollout(spec__replicas=-5)))
    assert code == 1
    assert "spec.replicas: Input should be greater than or equal to 0" in out


# --- what lint checked, skipped or refused ----------------------------------------------------


def test_no_document_checked_is_an_error_and_skips_are_named(tmp_path: pathlib.Path) -> None:
    canary = {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "x"}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}
    path = write(tmp_path, canary, service)
    code, _out, err = run("lint", path)
    assert code == 1
    assert f"{path}:doc 1: skipped: Canary flagger.app/v1beta1" in err
    assert f"{path}:doc 2: skipped: Service v1" in err
    assert "nothing was checked" in err
    empty = tmp_path / "empty.yaml"
    empty.write_text("---\n# nothing rendered\n")
    code, _, err = run("lint", str(empty))
    assert code == 1 and "nothing was checked" in err


def test_unserved_version_and_unknown_kind_are_errors(tmp_path: pathlib.Path) -> None:
    beta = rollout(apiVersion="rollouts.dev/v1beta1")
    typo = rollout(kind="Rolout")
    path = write(tmp_path, beta, typo)
    code, out, err = run("lint", path)
    assert code == 1
    assert f"{path}:doc 1: apiVersion: rollouts.dev/v1beta1 is not served" in out
    assert f"{path}:doc 2: kind: unknown kind 'Rolout'" in out
    assert "2 document(s) checked: 2 error(s)" in err


def test_lint_reads_standard_input() -> None:
    code, out, err = run("lint", "-", stdin=(DATA / "good.yaml").read_bytes())
    assert code == 0, out + err
    assert "3 document(s) checked: 0 error(s)" in err
    code, out, _ = run("lint", "-", stdin=yaml.safe_dump(rollout(spec__replicas=-1)).encode())
    assert code == 1 and out.startswith("<stdin>:doc 1: spec.replicas")


# --- hostile YAML -----------------------------------------------------------------------------

HOSTILE = {
    "long-integer": (b"a: " + b"7" * 5000 + b"\n", "number with 5000 digits is too long"),
    "not-utf8": (b"apiVersion: v1\nkind: \xff\xfe\x00x\n", "not UTF-8 text (byte 0xff"),
    "deep": (b"a: " + b"[" * 500 + b"]" * 500 + b"\n", "nested more than 100 levels deep"),
    "alias-bomb": (ALIAS_BOMB.encode(), f"aliases expand to more than {MAX_EXPANDED} nodes"),
    "self-alias": (b"a: &x [1, *x]\n", "alias *x refers to itself"),
    "self-alias-map": (b"spec: &s {template: *s}\n", "alias *s refers to itself"),
    "binary": (bytes(range(256)) * 4, "not UTF-8"),
    "control": (b"apiVersion: v1\x07\n", "invalid YAML"),
    "bad-date": (b"a: 2024-13-45 10:00:00\n", "invalid value"),
    "scalar": (b"just a string\n", "a manifest must be a mapping, not a string"),
    "duplicate-key": (b"apiVersion: v1\nkind: A\nkind: B\n", "duplicate key 'kind' (line 3)"),
    "python-tag": (b"a: !!python/object/apply:os.system [id]\n", "could not determine a"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("command", ["lint", "convert"])
def test_hostile_yaml_is_a_clear_error(tmp_path: pathlib.Path, case: str, command: str) -> None:
    data, fragment = HOSTILE[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(data)
    code, out, err = run(command, str(path))
    assert code == 1
    assert fragment in out + err, out + err
    no_traceback(out, err)
    if command == "convert":
        assert "unsupported" not in err


@pytest.mark.parametrize(("command", "module", "function"), [
    ("lint", lint_module, "lint_paths"),
    ("convert", convert_module, "convert_paths"),
])
def test_internal_errors_exit_3(monkeypatch: pytest.MonkeyPatch, command: str, module: Any,
                                function: str) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise KeyError("bug")

    monkeypatch.setattr(module, function, broken)
    code, out, err = run(command, str(DATA / "good.yaml"))
    assert code == 3 and out == ""
    assert "internal error (a bug in rollouts" in err and "KeyError" in err
    assert "Traceback" not in err
    monkeypatch.setenv("ROLLOUTS_DEBUG", "1")
    assert "Traceback" in run(command, str(DATA / "good.yaml"))[2]


# --- convert ----------------------------------------------------------------------------------

ARGO_WITH_COMMENTS = """\
# The shop, as Argo Rollouts runs it.
apiVersion: argoproj.io/v1alpha1   # changed by convert
kind: Rollout
metadata:
  name: shop
spec:
  replicas: 3
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
        - name: shop
          image: "example/shop:2"
          command:
            - sh
            - -c
            - |
              echo starting
              exec shop --port 8080
  strategy:
    canary:
      steps:
        - setWeight: 10   # a tenth first
        - pause: {duration: 1h}
"""


def test_convert_keeps_comments_quotes_and_block_scalars() -> None:
    code, out, err = run("convert", "-", stdin=ARGO_WITH_COMMENTS.encode())
    assert code == 0, err
    assert out == ARGO_WITH_COMMENTS.replace("argoproj.io/v1alpha1   #",
                                             "rollouts.dev/v1alpha1  #")


def test_convert_input_errors_are_not_unsupported_fields(tmp_path: pathlib.Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    code, _, err = run("convert", str(broken), str(tmp_path / "missing.yaml"))
    assert code == 1
    assert f"error: {broken}:doc 1: <yaml>: invalid YAML" in err
    assert f"error: {tmp_path / 'missing.yaml'}: <file>: no such file" in err
    assert "unsupported" not in err


def test_convert_directory_joins_files_as_one_stream(tmp_path: pathlib.Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a.yaml").write_text((DATA / "argo-clean.yaml").read_text())
    (tmp_path / "b" / "c.yml").write_text("apiVersion: v1\nkind: ConfigMap\n"
                                          "metadata: {name: c}\n")
    (tmp_path / "notes.txt").write_text("not yaml: [")
    code, out, err = run("convert", str(tmp_path))
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["Rollout", "ClusterAnalysisTemplate", "ConfigMap"]
    assert docs[0]["apiVersion"] == "rollouts.dev/v1alpha1"
