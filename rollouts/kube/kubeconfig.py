"""Reading kubeconfig files and the pod's service account, without the `kubernetes` package.

The controller needs only what kubectl reads to reach a server: the contexts, the cluster's
server and CA, and the user's credentials (token, token file, client certificate, basic auth,
an exec plugin). Importing the `kubernetes` package for that cost ~33 MiB of resident memory
in every controller process (and kopf imports it whenever it is installed), so this small
reader replaces it.

Files are merged as kubectl merges $KUBECONFIG: the first file that names a cluster, user or
context wins, and so does the first `current-context`. Relative paths in an entry are
relative to the file that holds it. Inline `*-data` fields are written to private temporary
files, because `ssl` loads certificates from paths.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

EXEC_TIMEOUT_SECONDS = 60.0
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubeconfigProblem(ValueError):
    """An entry cannot be used; the message says which and why (one line)."""


@dataclass(frozen=True)
class Entry:
    """A named cluster, user or context body, and the directory of the file it came from."""

    body: Mapping[str, Any]
    base: str


@dataclass(frozen=True)
class Merged:
    clusters: dict[str, Entry]
    users: dict[str, Entry]
    contexts: dict[str, Entry]
    current: str | None


@dataclass(frozen=True)
class Credentials:
    """What a user entry yields: paths for TLS, a token and how to refresh it."""

    token: str | None = None
    username: str | None = None
    password: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    refresh: Callable[[], str | None] | None = None


def merge(documents: list[tuple[str, Mapping[str, Any] | None]]) -> Merged:
    """The kubeconfig the (file name, parsed YAML) pairs make together, first one wins."""
    merged = Merged({}, {}, {}, None)
    current: str | None = None
    for name, data in documents:
        data = data or {}
        base = os.path.dirname(os.path.abspath(name))
        for key, into, inner in (("clusters", merged.clusters, "cluster"),
                                 ("users", merged.users, "user"),
                                 ("contexts", merged.contexts, "context")):
            for item in data.get(key) or []:
                if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                    body = item.get(inner)
                    into.setdefault(item["name"], Entry(
                        body if isinstance(body, Mapping) else {}, base))
        if current is None and isinstance(data.get("current-context"), str):
            current = data["current-context"] or None
    return Merged(merged.clusters, merged.users, merged.contexts, current)


def _path(entry: Entry, value: Any) -> str:
    text = os.path.expanduser(str(value))
    return text if os.path.isabs(text) else os.path.join(entry.base, text)


def _data_file(data: Any, field: str) -> str:
    """Inline base64 data written to a file only this user can read."""
    try:
        raw = base64.b64decode(str(data), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KubeconfigProblem(f"{field} is not valid base64") from exc
    handle, path = tempfile.mkstemp(prefix="rollouts-kubeconfig-")
    with os.fdopen(handle, "wb") as out:
        out.write(raw)
    return path


def _file_or_data(entry: Entry, field: str) -> str | None:
    """`field` (a path) or `field-data` (inline base64) of an entry, as a path."""
    if entry.body.get(f"{field}-data"):
        return _data_file(entry.body[f"{field}-data"], f"{field}-data")
    if entry.body.get(field):
        path = _path(entry, entry.body[field])
        if not os.path.isfile(path):
            raise KubeconfigProblem(f"{field} file {path} not found")
        return path
    return None


def cluster_tls(entry: Entry) -> tuple[str, str | None, bool]:
    """(server, CA path, verify) of a cluster entry."""
    server = str(entry.body.get("server") or "").rstrip("/")
    verify = not bool(entry.body.get("insecure-skip-tls-verify"))
    return server, _file_or_data(entry, "certificate-authority"), verify


def _read_token_file(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def _pem_file(text: Any) -> str:
    handle, path = tempfile.mkstemp(prefix="rollouts-kubeconfig-")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(str(text))
    return path


class ExecPlugin:
    """An exec credential plugin (client.authentication.k8s.io): run, cache until expiry."""

    def __init__(self, spec: Mapping[str, Any], base: str) -> None:
        command = str(spec.get("command") or "")
        if not command:
            raise KubeconfigProblem("exec plugin has no command")
        # A relative command with a slash is relative to the kubeconfig (as kubectl does).
        if os.sep in command and not os.path.isabs(command):
            command = os.path.join(base, command)
        self.argv = [command, *[str(a) for a in spec.get("args") or []]]
        self.env = {str(e.get("name")): str(e.get("value", ""))
                    for e in spec.get("env") or [] if isinstance(e, Mapping)}
        self.api_version = str(spec.get("apiVersion")
                               or "client.authentication.k8s.io/v1beta1")
        self.token: str | None = None
        self.cert: str | None = None
        self.key: str | None = None
        self.expires: dt.datetime | None = None

    def run(self) -> None:
        info = {"apiVersion": self.api_version, "kind": "ExecCredential",
                "spec": {"interactive": False}}
        env = {**os.environ, **self.env, "KUBERNETES_EXEC_INFO": json.dumps(info)}
        try:
            done = subprocess.run(self.argv, env=env, capture_output=True, text=True,
                                  timeout=EXEC_TIMEOUT_SECONDS, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KubeconfigProblem(f"exec plugin {self.argv[0]} failed: {exc}") from exc
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or [""])[-1]
            raise KubeconfigProblem(f"exec plugin {self.argv[0]} exited with "
                                    f"{done.returncode}{': ' + said if said else ''}")
        try:
            status = json.loads(done.stdout).get("status") or {}
        except (ValueError, AttributeError) as exc:
            raise KubeconfigProblem(f"exec plugin {self.argv[0]} did not print an "
                                    "ExecCredential") from exc
        self.token = status.get("token") or None
        if status.get("clientCertificateData") and status.get("clientKeyData"):
            self.cert = _pem_file(status["clientCertificateData"])
            self.key = _pem_file(status["clientKeyData"])
        if not (self.token or self.cert):
            raise KubeconfigProblem(f"exec plugin {self.argv[0]} returned no token and no "
                                    "client certificate")
        stamp = status.get("expirationTimestamp")
        self.expires = None
        if isinstance(stamp, str):
            try:
                self.expires = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                self.expires = None

    def current_token(self) -> str | None:
        """The token, re-run first when it has expired; the old one if the re-run fails."""
        if self.expires is not None and dt.datetime.now(dt.UTC) >= self.expires:
            try:
                self.run()
            except KubeconfigProblem:
                return self.token
        return self.token


def user_credentials(entry: Entry) -> Credentials:
    body = entry.body
    cert = _file_or_data(entry, "client-certificate")
    key = _file_or_data(entry, "client-key")
    if bool(cert) != bool(key):
        raise KubeconfigProblem("client-certificate and client-key must be given together")
    username = str(body["username"]) if body.get("username") else None
    password = str(body["password"]) if body.get("password") else None
    if body.get("token"):
        return Credentials(str(body["token"]), username, password, cert, key)
    if body.get("tokenFile"):
        path = _path(entry, body["tokenFile"])
        token = _read_token_file(path)
        if token is None:
            raise KubeconfigProblem(f"tokenFile {path} cannot be read")
        return Credentials(token, username, password, cert, key,
                           refresh=lambda: _read_token_file(path))
    if isinstance(body.get("exec"), Mapping):
        plugin = ExecPlugin(body["exec"], entry.base)
        plugin.run()
        return Credentials(plugin.token, username, password, cert or plugin.cert,
                           key or plugin.key, refresh=plugin.current_token)
    provider = body.get("auth-provider")
    if isinstance(provider, Mapping):
        settings = provider.get("config") or {}
        token = settings.get("id-token") or settings.get("access-token")
        if not token:
            raise KubeconfigProblem(f"auth-provider {provider.get('name')!r} holds no token: "
                                    "log in with the provider's tool, or use an exec plugin")
        return Credentials(str(token), username, password, cert, key)
    return Credentials(None, username, password, cert, key)


def in_cluster_settings() -> tuple[str, str | None, Callable[[], str | None]]:
    """(server, CA path, token reader) of the pod's service account."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_path = os.path.join(SERVICE_ACCOUNT_DIR, "token")
    if not host or not os.path.isfile(token_path):
        raise KubeconfigProblem("not running in a pod with a service account "
                                "(KUBERNETES_SERVICE_HOST or its token is missing)")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    ca = os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt")
    return (f"https://{host}:{port}", ca if os.path.isfile(ca) else None,
            lambda: _read_token_file(token_path))

