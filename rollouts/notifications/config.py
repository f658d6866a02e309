"""The services a controller delivers notifications to: its ConfigMap and Secret, parsed.

    apiVersion: v1
    kind: ConfigMap
    metadata: {name: rollouts-notifications}
    data:
      service.webhook.audit: |          # kind "webhook", name "audit"
        url: $audit-url                 # $key: a key of the Secret
        headers:
          Authorization: $audit-token
      service.slack: |                  # kind "slack", name "slack"
        url: $slack-webhook-url
      service.teams.ops: |              # kind "teams", name "ops"
        url: $ops-teams-url

A subscription names the service (`...subscribe.on-rollout-aborted.audit`). URLs and tokens
belong in the Secret; values are used as written when they do not start with `$`. A Service
keeps its URL and headers out of its repr, so no log line or error can show them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

KINDS: Final = ("webhook", "slack", "teams")


class ServiceError(ValueError):
    """A service that cannot be used; the message never contains a secret value."""


@dataclass(frozen=True)
class Service:
    name: str
    kind: str
    url: str = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Services:
    found: Mapping[str, Service] = field(default_factory=dict)
    # Services named in the ConfigMap that could not be read, with the reason.
    broken: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Service:
        if name in self.found:
            return self.found[name]
        raise ServiceError(self.broken.get(name, f"no service {name!r} is configured"))


def parse_services(config_data: Mapping[str, str] | None,
                   secret_data: Mapping[str, str] | None) -> Services:
    """Services from the ConfigMap's `data` and the Secret's decoded `data`."""
    found: dict[str, Service] = {}
    broken: dict[str, str] = {}
    for key, text in (config_data or {}).items():
        parts = key.split(".")
        if parts[0] != "service" or len(parts) not in (2, 3):
            continue
        kind = parts[1]
        name = parts[2] if len(parts) == 3 else kind
        try:
            found[name] = _service(name, kind, text, secret_data or {})
        except ServiceError as exc:
            broken[name] = str(exc)
    return Services(found, broken)


def _service(name: str, kind: str, text: str, secret: Mapping[str, str]) -> Service:
    if kind not in KINDS:
        raise ServiceError(f"service {name!r}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    try:
        body: Any = yaml.safe_load(text or "")
    except yaml.YAMLError:
        raise ServiceError(f"service {name!r}: not valid YAML") from None
    if not isinstance(body, Mapping) or not isinstance(body.get("url"), str):
        raise ServiceError(f"service {name!r}: needs a `url` (a string)")
    url = _resolve(name, "url", body["url"], secret)
    if not url.startswith(("http://", "https://")):
        raise ServiceError(f"service {name!r}: url must be http:// or https://")
    headers = body.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise ServiceError(f"service {name!r}: headers must be a map")
    return Service(name, kind, url, {str(k): _resolve(name, f"headers.{k}", v, secret)
                                     for k, v in headers.items()})


def _resolve(name: str, where: str, value: Any, secret: Mapping[str, str]) -> str:
    text = str(value)
    if not text.startswith("$"):
        return text
    key = text[1:]
    if key not in secret:
        raise ServiceError(f"service {name!r}: {where} refers to Secret key {key!r}, "
                           "which the Secret does not have")
    return secret[key]
