"""Every error answer of the emulator, as kube-apiserver gives it: code, reason, message, details.

The expected bodies come from k8s.io/apimachinery/pkg/api/errors (NewNotFound, NewAlreadyExists,
NewConflict, NewInvalid, NewBadRequest, NewGenericServerResponse), k8s.io/apiserver's patch
handler (a JSON patch that does not apply is the generic 422 with empty details), the
negotiation package (415), kube-openapi's validation messages and apiextensions' conversion of
them into field errors. Go drops empty `details` fields (omitempty), so the core group has no
`group` key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.emulator_thread import EmulatorThread

WIDGETS = "/apis/example.dev/v1/namespaces/default/widgets"
CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {
                            "size": {"type": "integer", "minimum": 0, "maximum": 10},
                            "mode": {"type": "string", "enum": ["slow", "medium"]},
                            "title": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                            "low": {"type": "integer"},
                            "high": {"type": "integer"},
                            "extra": {"type": "object",
                                      "x-kubernetes-preserve-unknown-fields": True},
                            "labels": {"type": "object",
                                       "additionalProperties": {"type": "string"}},
                        },
                        "x-kubernetes-validations": [
                            {"rule": "!has(self.low) || !has(self.high) || self.low <= self.high",
                             "message": "low must not exceed high"},
                        ],
                    },
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }},
        }],
    },
}
GENERIC_422 = "the server rejected our request due to an error in our request"


@pytest.fixture(scope="module")
def emulator() -> Iterator[ApiEmulator]:
    emulator = ApiEmulator()
    thread = EmulatorThread(emulator)
    thread.start()
    emulator.apply_manifest(CRD)
    emulator.apply_manifest({"apiVersion": "example.dev/v1", "kind": "Widget",
                             "metadata": {"name": "w1", "namespace": "default"},
                             "spec": {"size": 1}})
    try:
        yield emulator
    finally:
        thread.stop()


def widget(name: str = "w2", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": spec}


def call(emulator: ApiEmulator, method: str, path: str, body: Any = None,
         content_type: str = "application/json") -> httpx.Response:
    return httpx.request(method, emulator.url + path, json=body, timeout=10,
                         headers={"Content-Type": content_type})


def status(message: str, reason: str, code: int, details: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": message, "reason": reason,
                            "code": code}
    if details is not None:
        body["details"] = details
    return body


def invalid(name: str, *causes: tuple[str, str, str]) -> dict[str, Any]:
    texts = [f"{field}: {message}" for _, field, message in causes]
    summary = texts[0] if len(texts) == 1 else f"[{', '.join(texts)}]"
    return status(f'Widget.example.dev "{name}" is invalid: {summary}', "Invalid", 422, {
        "name": name, "group": "example.dev", "kind": "Widget",
        "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes]})


W1 = f"{WIDGETS}/w1"
JSON_PATCH = "application/json-patch+json"
CASES: list[tuple[str, str, str, Any, str, dict[str, Any]]] = [
    ("get a missing custom object", "GET", f"{WIDGETS}/nope", None, "application/json",
     status('widgets.example.dev "nope" not found', "NotFound", 404,
            {"name": "nope", "group": "example.dev", "kind": "widgets"})),
    ("get a missing core object", "GET", "/api/v1/namespaces/default/pods/nope", None,
     "application/json",
     status('pods "nope" not found', "NotFound", 404, {"name": "nope", "kind": "pods"})),
    ("an unknown resource", "GET", "/apis/nothing.dev/v1/things", None, "application/json",
     status("the server could not find the requested resource", "NotFound", 404, {})),
    ("create a duplicate", "POST", WIDGETS, widget("w1", size=1), "application/json",
     status('widgets.example.dev "w1" already exists', "AlreadyExists", 409,
            {"name": "w1", "group": "example.dev", "kind": "widgets"})),
    ("update with a stale resourceVersion", "PUT", W1,
     {**widget("w1", size=2), "metadata": {"name": "w1", "resourceVersion": "1"}},
     "application/json",
     status('Operation cannot be fulfilled on widgets.example.dev "w1": the object has been '
            "modified; please apply your changes to the latest version and try again",
            "Conflict", 409, {"name": "w1", "group": "example.dev", "kind": "widgets"})),
    ("a JSON patch whose test fails", "PATCH", W1,
     [{"op": "test", "path": "/metadata/resourceVersion", "value": "0"}], JSON_PATCH,
     status(GENERIC_422, "Invalid", 422, {})),
    ("a JSON patch removing a missing path", "PATCH", W1,
     [{"op": "remove", "path": "/spec/nothing"}], JSON_PATCH,
     status(GENERIC_422, "Invalid", 422, {})),
    ("a JSON patch testing a missing path", "PATCH", W1,
     [{"op": "test", "path": "/spec/nothing/deeper", "value": 1}], JSON_PATCH,
     status(GENERIC_422, "Invalid", 422, {})),
    ("a JSON patch that is not a list", "PATCH", W1, {"op": "add"}, JSON_PATCH,
     status("json: cannot unmarshal object into Go value of type jsonpatch.Patch",
            "BadRequest", 400, None)),
    ("a strategic merge patch on a custom resource", "PATCH", W1, {"spec": {"size": 2}},
     "application/strategic-merge-patch+json",
     status("the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml", "UnsupportedMediaType", 415, None)),
    ("an invalid name", "POST", WIDGETS, widget("Bad_Name", size=1), "application/json",
     invalid("Bad_Name", ("FieldValueInvalid", "metadata.name",
                          'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must '
                          "consist of lower case alphanumeric characters, '-' or '.', and must "
                          "start and end with an alphanumeric character"))),
    ("below a minimum", "POST", WIDGETS, widget(size=-5), "application/json",
     invalid("w2", ("FieldValueInvalid", "spec.size",
                    "Invalid value: -5: spec.size in body should be greater than or equal to 0"))),
    ("above a maximum, through a merge patch", "PATCH", W1, {"spec": {"size": 11}},
     "application/merge-patch+json",
     invalid("w1", ("FieldValueInvalid", "spec.size",
                    "Invalid value: 11: spec.size in body should be less than or equal to 10"))),
    ("a wrong type", "POST", WIDGETS, widget(size="big"), "application/json",
     invalid("w2", ("FieldValueTypeInvalid", "spec.size",
                    'Invalid value: "string": spec.size in body must be of type integer: '
                    '"string"'))),
    ("a value outside the enum", "POST", WIDGETS, widget(size=1, mode="fast"),
     "application/json",
     invalid("w2", ("FieldValueNotSupported", "spec.mode",
                    'Unsupported value: "fast": supported values: "slow", "medium"'))),
    ("a pattern and a length", "POST", WIDGETS, widget(size=1, title="ABCDEFGHIJ"),
     "application/json",
     invalid("w2", ("FieldValueTooLong", "spec.title", "Too long: may not be more than 8 bytes"),
             ("FieldValueInvalid", "spec.title",
              "Invalid value: \"ABCDEFGHIJ\": spec.title in body should match '^[a-z]+$'"))),
    ("a required field missing", "POST", WIDGETS, widget(mode="slow"), "application/json",
     invalid("w2", ("FieldValueRequired", "spec.size", "Required value"))),
    ("a map value of the wrong type", "POST", WIDGETS, widget(size=1, labels={"a": 1}),
     "application/json",
     invalid("w2", ("FieldValueTypeInvalid", "spec.labels[a]",
                    'Invalid value: "integer": spec.labels[a] in body must be of type string: '
                    '"integer"'))),
    ("a CEL rule", "POST", WIDGETS, widget(size=1, low=5, high=1), "application/json",
     invalid("w2", ("FieldValueInvalid", "spec",
                    'Invalid value: "object": low must not exceed high'))),
    ("an unknown field with strict field validation", "POST",
     f"{WIDGETS}?fieldValidation=Strict", widget(size=1, colour="red"), "application/json",
     status('Widget in version "v1" cannot be handled as a Widget: strict decoding error: '
            'unknown field "spec.colour"', "BadRequest", 400, None)),
]


@pytest.mark.parametrize(("method", "path", "body", "content_type", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_error_answer_is_kube_apiservers(
    emulator: ApiEmulator, method: str, path: str, body: Any, content_type: str,
    expected: dict[str, Any],
) -> None:
    response = call(emulator, method, path, body, content_type)
    assert response.status_code == expected["code"]
    assert response.json() == expected


def test_unknown_fields_are_pruned_unless_preserved(emulator: ApiEmulator) -> None:
    created = call(emulator, "POST", WIDGETS,
                   widget("pruned", size=1, colour="red", extra={"free": {"form": True}},
                          labels={"a": "b"}))
    assert created.status_code == 201, created.text
    spec = emulator.get_object("example.dev", "v1", "widgets", "default", "pruned")["spec"]
    assert spec == {"size": 1, "extra": {"free": {"form": True}}, "labels": {"a": "b"}}


def test_a_failed_patch_changes_nothing(emulator: ApiEmulator) -> None:
    before = emulator.get_object("example.dev", "v1", "widgets", "default", "w1")
    call(emulator, "PATCH", W1, {"spec": {"size": 99}}, "application/merge-patch+json")
    call(emulator, "PATCH", W1, [{"op": "test", "path": "/spec/size", "value": 7},
                                 {"op": "replace", "path": "/spec/size", "value": 3}],
         JSON_PATCH)
    assert emulator.get_object("example.dev", "v1", "widgets", "default", "w1") == before
