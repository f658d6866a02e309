"""Every way a kubeconfig goes wrong gives one line that says what to do, for the CLI's
commands and for `rollouts controller` (which used to print a 50-line traceback)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from rollouts.cli.main import app
from rollouts.kube.config import NO_KUBECONFIG, KubeconfigError, from_kubeconfig
from tests.json_http import serve_json

REFUSED = "http://127.0.0.1:9"  # the discard port: nothing listens


def kubeconfig(tmp_path: pathlib.Path, server: str = REFUSED) -> pathlib.Path:
    path = tmp_path / "config"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}"}}}}]
users: [{{name: u, user: {{token: x}}}}]
contexts: [{{name: dev, context: {{cluster: c, user: u}}}},
           {{name: prod, context: {{cluster: c, user: u, namespace: shop}}}}]
current-context: dev
""")
    return path


def one_line_error(args: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def no_default(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return {"KUBECONFIG": "", "HOME": str(tmp_path / "home")}


@pytest.mark.parametrize("command", [["list"], ["get", "web"], ["controller"], ["dashboard"]])
def test_no_kubeconfig_at_all(no_default: dict[str, str], command: list[str]) -> None:
    assert one_line_error(command, no_default) == f"error: {NO_KUBECONFIG}"


@pytest.mark.parametrize("command", [["list"], ["controller"]])
def test_missing_file(tmp_path: pathlib.Path, command: list[str]) -> None:
    line = one_line_error([*command, "--kubeconfig", str(tmp_path / "nope")])
    assert f"kubeconfig {tmp_path / 'nope'} not found" in line
    assert "Invalid kube-config" not in line


def test_unreadable_file(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("clusters: [oops\n")
    line = one_line_error(["controller", "--kubeconfig", str(bad)])
    assert f"kubeconfig {bad} cannot be read" in line and "line 2" in line


@pytest.mark.parametrize("command", [["list"], ["controller"]])
def test_unknown_context_lists_the_known_ones(tmp_path: pathlib.Path,
                                              command: list[str]) -> None:
    line = one_line_error([*command, "--kubeconfig", str(kubeconfig(tmp_path)),
                           "--context", "staging"])
    assert "context 'staging' not found" in line and "known contexts: dev, prod" in line


@pytest.mark.parametrize("command", [["list"], ["get", "web"], ["controller"],
                                     ["promote", "web"], ["set", "image", "web", "app=nginx:2"],
                                     ["undo", "web"], ["restart", "web"]])
def test_unreachable_server_named_with_its_context(tmp_path: pathlib.Path,
                                                    command: list[str]) -> None:
    line = one_line_error([*command, "--kubeconfig", str(kubeconfig(tmp_path)),
                           "--context", "prod"])
    assert f"cannot reach the Kubernetes API server at {REFUSED} (context prod)" in line


@pytest.mark.parametrize("current, said", [
    ("", "sets no current-context"),
    ("current-context: gone\n", "has current-context 'gone', which is not one of its contexts"),
])
def test_no_current_context_lists_the_known_ones(tmp_path: pathlib.Path, current: str,
                                                 said: str) -> None:
    path = kubeconfig(tmp_path)
    path.write_text(path.read_text().replace("current-context: dev\n", current))
    line = one_line_error(["controller", "--kubeconfig", str(path)])
    assert said in line and "pass --context" in line and "known contexts: dev, prod" in line


def test_bad_certificates_name_the_field_to_fix(tmp_path: pathlib.Path) -> None:
    """An https server whose CA data, or a user whose client certificate, does not load:
    one line naming the field (it used to be an ssl traceback from the first request)."""
    junk = "bm90IGEgY2VydGlmaWNhdGU="  # base64 of "not a certificate"
    path = kubeconfig(tmp_path, server="https://127.0.0.1:9")
    text = path.read_text()
    path.write_text(text.replace('server: "https://127.0.0.1:9"',
                                 f'server: "https://127.0.0.1:9", '
                                 f'certificate-authority-data: {junk}'))
    line = one_line_error(["controller", "--kubeconfig", str(path)])
    assert "its certificate authority does not load" in line
    assert "fix certificate-authority or certificate-authority-data" in line
    path.write_text(text.replace("user: {token: x}", f"user: {{client-certificate-data: {junk}, "
                                                     f"client-key-data: {junk}}}"))
    line = one_line_error(["list", "--kubeconfig", str(path)])
    assert "its client certificate and key do not load" in line


def _reject_credentials(path: str, headers: object) -> tuple[int, object]:
    """An API server that answers /version and rejects every credential elsewhere."""
    if path == "/version":
        return 200, {"major": "1", "minor": "35"}
    return 401, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 401,
                 "reason": "Unauthorized", "message": "Unauthorized"}


@pytest.fixture
def rejecting_server() -> Iterator[str]:
    with serve_json(_reject_credentials) as url:
        yield url


def test_rejected_credentials_are_one_line(tmp_path: pathlib.Path,
                                           rejecting_server: str) -> None:
    """kopf would re-authenticate in a loop, logging ~20 lines a second, and never say why."""
    line = one_line_error(["controller", "--kubeconfig",
                           str(kubeconfig(tmp_path, server=rejecting_server)), "--standalone"])
    assert f"API server at {rejecting_server} (context dev) rejects the kubeconfig's " \
           "credentials (401 Unauthorized)" in line and "renew the token" in line


def test_a_context_without_server(tmp_path: pathlib.Path) -> None:
    with pytest.raises(KubeconfigError, match="names no server URL"):
        from_kubeconfig(str(kubeconfig(tmp_path, server="")))


def test_a_good_kubeconfig_loads(tmp_path: pathlib.Path) -> None:
    connection = from_kubeconfig(str(kubeconfig(tmp_path)), "prod")
    assert (connection.host, connection.context, connection.default_namespace) == (
        REFUSED, "prod", "shop")
