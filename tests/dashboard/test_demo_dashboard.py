"""`rollouts demo --keep --dashboard` serves the kept sandbox (port 3100, else a free one)."""

from __future__ import annotations

import contextlib
import socket

import httpx
import pytest

from rollouts.cli.demo import serve_dashboard
from rollouts.sandbox.cluster import Sandbox

pytestmark = pytest.mark.e2e


def test_demo_dashboard_serves_the_sandbox_even_when_3100_is_taken() -> None:
    with Sandbox(ready_delay=0.1) as sb, contextlib.ExitStack() as stack:
        sb.apply([{"apiVersion": "rollouts.dev/v1alpha1", "kind": "Rollout",
                   "metadata": {"name": "web"},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "w",
                                                                  "image": "x:1"}]}},
                            "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}}])
        blocker = stack.enter_context(socket.socket())
        with contextlib.suppress(OSError):  # already taken by someone else: just as good
            blocker.bind(("127.0.0.1", 3100))
            blocker.listen()
        with serve_dashboard(sb) as url:
            assert not url.endswith(":3100/")
            page = httpx.get(url, timeout=10)
            assert page.status_code == 200 and 'id="r--default--web"' in page.text
