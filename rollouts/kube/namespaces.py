"""The namespaces a controller is started to serve (`rollouts controller -n NAME`).

A name the API server could never accept is a usage error before anything starts. A valid
name whose namespace does not exist is not: GitOps tools often create the namespace after
the controller, and the controller's watches pick up what is created there later. Each
missing one is logged once at start, so that a typo (`-n shpo`) does not go unnoticed as a
controller that serves nothing. Reading a Namespace needs a cluster-scope permission that a
Role-per-namespace install does not grant: then nothing is checked (said at debug level).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Final

import httpx

from rollouts.errors import ForbiddenError, KubeError, NotFoundError
from rollouts.kube.client import KubeClient

_LOG = logging.getLogger(__name__)

MAX_NAMESPACE_LENGTH: Final = 63
_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
NAMESPACE_RULE: Final = ("a DNS-1123 label: lowercase letters, digits and '-', starting and "
                         f"ending with a letter or digit, at most {MAX_NAMESPACE_LENGTH} "
                         "characters")


def namespace_name_problem(name: str) -> str | None:
    """One line saying why `name` cannot be a namespace's name; None when it can."""
    if len(name) <= MAX_NAMESPACE_LENGTH and _LABEL.fullmatch(name):
        return None
    return f"invalid namespace {name!r}: a namespace name must be {NAMESPACE_RULE}"


async def warn_missing_namespaces(client: KubeClient, names: Iterable[str]) -> tuple[str, ...]:
    """GET each namespace; log a warning for each one that does not exist and return those.

    A 403 (no permission to read Namespaces) skips the check of that name; any other failure
    is logged and the controller starts all the same (its watches report their own errors).
    """
    missing: list[str] = []
    for name in dict.fromkeys(names):
        try:
            await client.get("", "v1", "namespaces", None, name)
        except NotFoundError:
            _LOG.warning("namespace %s does not exist; watching it anyway: Rollouts created "
                         "there later are picked up", name)
            missing.append(name)
        except ForbiddenError:
            _LOG.debug("not checking that namespace %s exists: reading Namespaces is "
                       "forbidden to this controller (as with a Role per namespace)", name)
        except (KubeError, httpx.HTTPError) as exc:
            _LOG.warning("could not check that namespace %s exists (%s); watching it anyway",
                         name, str(exc) or type(exc).__name__)
    return tuple(missing)
