"""Credentials from a kubeconfig reach the client (the kubernetes package keeps the token
under "BearerToken" since v30; reading only "authorization" sent no token at all)."""

from __future__ import annotations

import pathlib

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
