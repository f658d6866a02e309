"""Pod templates in manifests (a Rollout's, a job metric's Job): checked as the API server would.

Two layers. The structure and types come from the Kubernetes OpenAPI schema that the
`kubernetes-validate` package ships (strict: unknown fields are errors), checked with
jsonschema so that every error is reported, not only the first. The schema cannot express
the rules kube-apiserver's validation adds, so the ones that catch real mistakes are here:
resource quantities, container and port names, port ranges, probe handlers and thresholds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from importlib.resources import files
from typing import Any, Final

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

MAX_SCHEMA_ERRORS: Final = 20  # per template: past that, the rest is noise
_POD_TEMPLATE: Final = "io.k8s.api.core.v1.PodTemplateSpec"
_JOB_SPEC: Final = "io.k8s.api.batch.v1.JobSpec"

_DNS_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_IANA_SVC_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_QUANTITY: Final = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE]|[eE][+-]?[0-9]+)?\Z"
)
_SUFFIX: Final = {
    None: Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_PROBE_HANDLERS: Final = ("exec", "httpGet", "tcpSocket", "grpc")
_PROBES: Final = ("livenessProbe", "readinessProbe", "startupProbe")
_PROTOCOLS: Final = ("TCP", "UDP", "SCTP")

Finding = tuple[str, str]  # (field path, message)


class PodTemplateChecker:
    """Schema validators are built on first use (the schema is ~2 MB) and reused."""

    def __init__(self) -> None:
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    def _validator(self, definition: str) -> jsonschema.protocols.Validator:
        if definition not in self._validators:
            version = kubernetes_validate.latest_version()
            text = files("kubernetes_validate").joinpath(
                f"kubernetes-json-schema/v{version}-local-strict/_definitions.json").read_text()
            schema = json.loads(text)
            registry: Registry[Any] = Registry().with_resource(
                schema["$id"], Resource.from_contents(schema))
            self._validators[definition] = jsonschema.Draft202012Validator(
                {"$ref": f"{schema['$id']}#/$defs/{definition}"}, registry=registry)
        return self._validators[definition]

    def template(self, template: object, base: str) -> list[Finding]:
        """Problems of a PodTemplateSpec at field path `base` (e.g. spec.template)."""
        found = self._schema(_POD_TEMPLATE, template, base)
        if isinstance(template, Mapping) and isinstance(template.get("spec"), Mapping):
            found += pod_spec_rules(template["spec"], f"{base}.spec")
        return found

    def job_spec(self, spec: object, base: str) -> list[Finding]:
        """Problems of a Job's spec (a job metric's provider.job.spec)."""
        found = self._schema(_JOB_SPEC, spec, base)
        template = spec.get("template") if isinstance(spec, Mapping) else None
        pod = template.get("spec") if isinstance(template, Mapping) else None
        if isinstance(pod, Mapping):
            found += pod_spec_rules(pod, f"{base}.template.spec")
            policy = pod.get("restartPolicy")
            if policy not in ("OnFailure", "Never"):
                found.append((f"{base}.template.spec.restartPolicy",
                              f"a Job's pods need restartPolicy OnFailure or Never, got "
                              f"{_show(policy)}"))
        return found

    def _schema(self, definition: str, value: object, base: str) -> list[Finding]:
        found: list[Finding] = []
        for error in self._validator(definition).iter_errors(value):
            if len(found) == MAX_SCHEMA_ERRORS:
                found.append((base, "more schema errors not shown"))
                break
            found.append((_path(base, error.absolute_path), _schema_message(error)))
        return found


def _path(base: str, parts: Iterator[Any] | Any) -> str:
    path = base
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _schema_message(error: jsonschema.ValidationError) -> str:
    message = str(error.message)
    if error.validator == "oneOf" and error.validator_value and all(
        isinstance(s, Mapping) and "type" in s for s in error.validator_value
    ):
        kinds = " or ".join(str(s["type"][0] if isinstance(s["type"], list) else s["type"])
                            for s in error.validator_value)
        return f"must be a {kinds}, got {_show(error.instance)}"
    if error.validator == "additionalProperties":
        return message.replace("Additional properties are not allowed", "unknown field(s)")[:200]
    if error.validator == "type":
        wanted = error.validator_value
        wanted = [w for w in wanted if w != "null"] if isinstance(wanted, list) else [wanted]
        return f"must be of type {' or '.join(map(str, wanted))}, got {_show(error.instance)}"
    if error.validator == "required":
        return message.replace("is a required property", "is required")[:200]
    return message[:200]


# --- the rules the API server adds to the schema -----------------------------------------------


def parse_quantity(value: object) -> Decimal | None:
    """A Kubernetes resource quantity ("500m", "1Gi", 2, "1e3") as a number, else None."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value) if not isinstance(value, str) else value
    match = _QUANTITY.match(text)
    if match is None or len(text) > 64:
        return None
    try:
        number = Decimal(match["number"])
        suffix = match["suffix"]
        if suffix and suffix[0] in "eE":
            return number * Decimal(10) ** int(suffix[1:])
        return number * _SUFFIX[suffix]
    except (InvalidOperation, OverflowError, ValueError):
        return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def pod_spec_rules(spec: Mapping[str, Any], base: str) -> list[Finding]:
    found: list[Finding] = []
    seen_names: set[str] = set()
    seen_ports: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, container in enumerate(_items(spec.get(group))):
            if isinstance(container, Mapping):
                found += _container_rules(container, f"{base}.{group}[{i}]", seen_names,
                                          seen_ports, probes=group == "containers")
    return found


def _container_rules(container: Mapping[str, Any], base: str, seen_names: set[str],
                     seen_ports: set[str], *, probes: bool) -> list[Finding]:
    found: list[Finding] = []
    name = container.get("name")
    if isinstance(name, str):
        if len(name) > 63 or not _DNS_LABEL.match(name):
            found.append((f"{base}.name", f"{name!r} is not a valid container name (lowercase "
                          "letters, digits and '-', starting and ending with a letter or "
                          "digit, at most 63 characters)"))
        elif name in seen_names:
            found.append((f"{base}.name", f"duplicate container name {name!r}"))
        seen_names.add(name)
    if "image" not in container or container.get("image") in ("", None):
        found.append((f"{base}.image", "an image is required"))
    found += _resource_rules(_mapping(container.get("resources")), f"{base}.resources")
    for j, port in enumerate(_items(container.get("ports"))):
        if isinstance(port, Mapping):
            found += _port_rules(port, f"{base}.ports[{j}]", seen_ports)
    for probe in _PROBES:
        if isinstance(container.get(probe), Mapping):
            found += _probe_rules(container[probe], f"{base}.{probe}", probe)
    return found


def _resource_rules(resources: Mapping[str, Any], base: str) -> list[Finding]:
    found: list[Finding] = []
    parsed: dict[str, dict[str, Decimal]] = {}
    for kind in ("requests", "limits"):
        parsed[kind] = {}
        for resource, value in _mapping(resources.get(kind)).items():
            amount = parse_quantity(value)
            where = f"{base}.{kind}.{resource}"
            if amount is None:
                found.append((where, f"{_show(value)} is not a valid quantity (e.g. 500m, "
                              "128Mi, 1Gi, 2)"))
            elif amount < 0:
                found.append((where, "must be greater than or equal to 0"))
            else:
                parsed[kind][resource] = amount
    for resource, requested in parsed["requests"].items():
        limit = parsed["limits"].get(resource)
        if limit is not None and requested > limit:
            found.append((f"{base}.requests.{resource}",
                          f"must be less than or equal to the {resource} limit"))
    return found


def _port_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _port_name_problem(name: str) -> str | None:
    if len(name) > 15 or not _IANA_SVC_NAME.match(name) or "--" in name \
            or not any(c.isalpha() for c in name):
        return (f"{name!r} is not a valid port name (at most 15 lowercase letters, digits and "
                "'-', with at least one letter, no '--', not starting or ending with '-')")
    return None


def _port_rules(port: Mapping[str, Any], base: str, seen: set[str]) -> list[Finding]:
    found: list[Finding] = []
    for key in ("containerPort", "hostPort"):
        if key in port and isinstance(port[key], int) and not _port_number(port[key]):
            found.append((f"{base}.{key}",
                          f"must be between 1 and 65535, got {_show(port[key])}"))
    protocol = port.get("protocol")
    if isinstance(protocol, str) and protocol not in _PROTOCOLS:
        found.append((f"{base}.protocol", f"must be one of {', '.join(_PROTOCOLS)}, got "
                      f"{_show(protocol)}"))
    name = port.get("name")
    if isinstance(name, str):
        problem = _port_name_problem(name)
        if problem:
            found.append((f"{base}.name", problem))
        elif name in seen:
            found.append((f"{base}.name", f"duplicate port name {name!r}"))
        seen.add(name)
    return found


def _probe_rules(probe: Mapping[str, Any], base: str, kind: str) -> list[Finding]:
    found: list[Finding] = []
    handlers = [h for h in _PROBE_HANDLERS if probe.get(h) is not None]
    if len(handlers) != 1:
        got = ", ".join(handlers) or "none"
        found.append((base, f"needs exactly one of {', '.join(_PROBE_HANDLERS)} (got {got})"))
    for handler in ("httpGet", "tcpSocket", "grpc"):
        action = probe.get(handler)
        if not isinstance(action, Mapping) or "port" not in action:
            continue
        port = action["port"]
        if isinstance(port, str) and handler != "grpc":
            problem = _port_name_problem(port)
            if problem:
                found.append((f"{base}.{handler}.port", problem))
        elif isinstance(port, int) and not _port_number(port):
            found.append((f"{base}.{handler}.port",
                          f"must be between 1 and 65535, got {_show(port)}"))
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold", "terminationGracePeriodSeconds"):
        value = probe.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            found.append((f"{base}.{key}", "must be greater than or equal to 0"))
    success = probe.get("successThreshold")
    if kind != "readinessProbe" and isinstance(success, int) and success not in (0, 1):
        found.append((f"{base}.successThreshold", f"must be 1 for a {kind}"))
    return found
