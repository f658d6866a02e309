"""RBAC for the API emulator: who a bearer token is, and what its Roles let it do.

The emulator (`rollouts.sandbox.apiserver`) stores Roles, ClusterRoles, RoleBindings and
ClusterRoleBindings like any other object. A token registered with
`ApiEmulator.add_token(token, user)` is authorised by those objects the way kube-apiserver's
RBAC authorizer does it; any other token is the sandbox's administrator (as before).

What follows the real server:
* subjects: User, Group, ServiceAccount (a service account is the user
  ``system:serviceaccount:NS:NAME`` in groups ``system:serviceaccounts``,
  ``system:serviceaccounts:NS`` and ``system:authenticated``);
* a ClusterRoleBinding grants its ClusterRole everywhere; a RoleBinding grants its Role or
  ClusterRole in its own namespace only;
* rules match on verbs, apiGroups, resources (``plural``, ``plural/sub``, ``*``, ``*/sub``;
  ``pods`` does not cover ``pods/status``), resourceNames (only for requests that name an
  object) and nonResourceURLs (exact, or a prefix ending in ``*``);
* discovery and health paths are open to every authenticated user (the default
  ``system:discovery`` and ``system:public-info-viewer`` bindings);
* a denial is 403 Forbidden with the server's message, e.g. ``rollouts.rollouts.dev "web" is
  forbidden: User "system:serviceaccount:ops:rollouts" cannot patch resource
  "rollouts/status" in API group "rollouts.dev" in the namespace "shop"``, and a binding
  whose role is missing adds the authorizer's reason (``: RBAC: role.rbac... not found``).

Not emulated: aggregated ClusterRoles, escalation checks on writing RBAC objects, impersonation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Obj = dict[str, Any]

GROUP = "rbac.authorization.k8s.io"
# Paths the default system:discovery / system:public-info-viewer roles open to everyone.
OPEN_PATHS = ("/api", "/api/*", "/apis", "/apis/*", "/version", "/version/", "/healthz",
              "/livez", "/readyz", "/openapi", "/openapi/*")


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ("system:authenticated",)

    @classmethod
    def service_account(cls, namespace: str, name: str) -> User:
        return cls(f"system:serviceaccount:{namespace}:{name}",
                   ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                    "system:authenticated"))


@dataclasses.dataclass(frozen=True)
class Request:
    """kube-apiserver's authorizer.Attributes, for one HTTP request."""

    user: User
    verb: str
    path: str
    resource_request: bool = True
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


class Policy:
    """The RBAC objects a decision reads, looked up in the emulator's store."""

    def __init__(self, lookup: Callable[[str, str | None, str], Obj | None],
                 items: Callable[[str, str | None], Iterable[Obj]]) -> None:
        # lookup(plural, namespace, name); items(plural, namespace or None for all).
        self._lookup, self._items = lookup, items

    def decide(self, request: Request) -> tuple[bool, str]:
        """(allowed, reason): the reason names RBAC objects that could not be read."""
        if not request.resource_request and _path_matches(OPEN_PATHS, request.path):
            return True, ""
        errors: list[str] = []
        bindings: list[tuple[Obj, str | None]] = [
            (b, None) for b in self._items("clusterrolebindings", None)]
        if request.namespace:
            bindings += [(b, request.namespace)
                         for b in self._items("rolebindings", request.namespace)]
        for binding, namespace in bindings:
            if not any(_subject_matches(s, request.user, namespace)
                       for s in binding.get("subjects") or ()):
                continue
            rules = self._rules(binding.get("roleRef") or {}, namespace, errors)
            if any(_rule_allows(rule, request) for rule in rules):
                return True, ""
        return False, f"RBAC: {', '.join(errors)}" if errors else ""

    def _rules(self, ref: Mapping[str, Any], namespace: str | None,
               errors: list[str]) -> list[Obj]:
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        if kind == "ClusterRole":
            role = self._lookup("clusterroles", None, name)
            missing = f'clusterrole.{GROUP} "{name}" not found'
        elif kind == "Role" and namespace is not None:
            role = self._lookup("roles", namespace, name)
            missing = f'role.{GROUP} "{name}" not found'
        else:
            return []
        if role is None:
            errors.append(missing)
            return []
        return list(role.get("rules") or ())


def _subject_matches(subject: Mapping[str, Any], user: User, binding_ns: str | None) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        # A RoleBinding's subject without a namespace means the binding's own namespace.
        namespace = subject.get("namespace") or binding_ns or ""
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


def _rule_allows(rule: Mapping[str, Any], request: Request) -> bool:
    verbs = rule.get("verbs") or ()
    if "*" not in verbs and request.verb not in verbs:
        return False
    if not request.resource_request:
        return _path_matches(rule.get("nonResourceURLs") or (), request.path)
    groups = rule.get("apiGroups") or ()
    if "*" not in groups and request.group not in groups:
        return False
    resources = rule.get("resources") or ()
    if not ("*" in resources or request.combined_resource in resources
            or (request.subresource and f"*/{request.subresource}" in resources)):
        return False
    names = rule.get("resourceNames") or ()
    return not names or (bool(request.name) and request.name in names)


def _path_matches(patterns: Iterable[str], path: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == path:
            return True
        if pattern.endswith("*") and path.startswith(pattern[:-1]):
            return True
    return False


def forbidden_message(request: Request, reason: str) -> tuple[str, Obj | None]:
    """The Status message (and details) kube-apiserver answers a denied request with."""
    user = request.user.name
    if not request.resource_request:
        message = f'forbidden: User "{user}" cannot {request.verb} path "{request.path}"'
        return (f"{message}: {reason}" if reason else message), None
    scope = (f'in the namespace "{request.namespace}"' if request.namespace
             else "at the cluster scope")
    why = (f'User "{user}" cannot {request.verb} resource "{request.combined_resource}" '
           f'in API group "{request.group}" {scope}')
    if reason:
        why = f"{why}: {reason}"
    qualified = (f"{request.resource}.{request.group}" if request.group else request.resource)
    subject = f'{qualified} "{request.name}"' if request.name else qualified
    details: Obj = {"group": request.group, "kind": request.resource}
    if request.name:
        details = {"name": request.name, **details}
    return f"{subject} is forbidden: {why}", details


def request_verb(method: str, *, watch: bool, named: bool) -> str:
    """The authorizer's verb for an HTTP method on a collection or an object."""
    if method == "GET":
        return "watch" if watch else ("get" if named else "list")
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
