"""Credentials from a kubeconfig reach the client: tokens, token files, exec plugins, inline
and relative certificate files, merged $KUBECONFIG lists (`rollouts.kube.kubeconfig`)."""

from __future__ import annotations

import base64
import json
import os
import pathlib

import pytest
import trustme
import yaml

from rollouts.kube import config


def test_kubeconfig_token_is_the_bearer(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://k8s.example:6443"}}],
        "users": [{"name": "u", "user": {"token": "abc.def"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u",
                                               "namespace": "shop"}}],
    }))
    connection = config.load(str(path))
    assert connection.bearer() == "abc.def"
    assert connection.default_namespace == "shop"


def _write(path: pathlib.Path, user: dict[str, object], cluster: dict[str, object],
           **top: object) -> pathlib.Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://k8s.example:6443",
                                               **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}], **top,
    }))
    return path


def test_inline_ca_and_client_certificate_become_private_files(tmp_path: pathlib.Path) -> None:
    ca = trustme.CA()
    client = ca.issue_cert("rollouts")
    ca_pem = ca.cert_pem.bytes()
    cert_pem, key_pem = client.cert_chain_pems[0].bytes(), client.private_key_pem.bytes()
    path = _write(tmp_path / "config", {"client-certificate-data": _b64(cert_pem),
                                        "client-key-data": _b64(key_pem)},
                  {"certificate-authority-data": _b64(ca_pem)})
    connection = config.load(str(path))
    for written, pem in ((connection.ca_path, ca_pem), (connection.cert_path, cert_pem),
                         (connection.key_path, key_pem)):
        assert written and pathlib.Path(written).read_bytes() == pem
        assert os.stat(written).st_mode & 0o077 == 0
    assert connection.verify and connection.bearer() is None
    assert connection.default_namespace == "default"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_relative_paths_are_relative_to_the_file_and_token_files_are_reread(
        tmp_path: pathlib.Path) -> None:
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    (tmp_path / "token").write_text("one\n")
    path = _write(tmp_path / "config", {"tokenFile": "token"},
                  {"certificate-authority": "ca.crt", "insecure-skip-tls-verify": True})
    connection = config.load(str(path))
    assert connection.ca_path == str(tmp_path / "ca.crt") and not connection.verify
    assert connection.bearer() == "one"
    (tmp_path / "token").write_text("two\n")
    assert connection.bearer() == "two"


def test_exec_plugin_token(tmp_path: pathlib.Path) -> None:
    plugin = tmp_path / "plugin.sh"
    plugin.write_text('#!/bin/sh\necho "$KUBERNETES_EXEC_INFO" > "$0.info"\n'
                      'echo \'{"kind": "ExecCredential", "status": {"token": "t-\'$1\'"}}\'\n')
    plugin.chmod(0o755)
    path = _write(tmp_path / "config", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "./plugin.sh",
        "args": ["x"]}}, {})
    connection = config.load(str(path))
    assert connection.bearer() == "t-x"
    info = json.loads((tmp_path / "plugin.sh.info").read_text())
    assert info["apiVersion"] == "client.authentication.k8s.io/v1"


def test_a_failing_exec_plugin_is_one_line(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path / "config", {"exec": {"command": "false"}}, {})
    with pytest.raises(config.KubeconfigError, match="exec plugin false exited with 1"):
        config.load(str(path))


def test_kubeconfig_list_first_file_wins(tmp_path: pathlib.Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    first = _write(tmp_path / "a", {"token": "first"}, {})
    second = _write(tmp_path / "b", {"token": "second"}, {}, **{"current-context": "other"})
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{second}")
    connection = config.load()
    assert connection.bearer() == "first" and connection.context == "c"


def test_a_context_naming_a_missing_cluster_is_one_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"current-context": "c", "contexts": [
        {"name": "c", "context": {"cluster": "gone", "user": "u"}}]}))
    with pytest.raises(config.KubeconfigError, match="cluster 'gone' not found"):
        config.load(str(path))
