"""HTML for the pages and the live fragments, from the templates shipped in the package.

Jinja2 escapes every value (autoescape), so a name, message or condition from the cluster
can never become markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jinja2

from rollouts.dashboard.model import OPERATIONS, PHASES, Detail, Row


@dataclass(frozen=True)
class Frame:
    """What every page carries: where it lives, the scope served and the action token."""

    root: str
    token: str
    scope: str
    problems: Sequence[str] = ()

    @property
    def static(self) -> str:
        return f"{self.root}static"


class Pages:
    def __init__(self) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("rollouts.dashboard", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def _render(self, name: str, frame: Frame, **values: object) -> str:
        return self._env.get_template(name).render(
            root=frame.root, token=frame.token, scope=frame.scope, problems=frame.problems,
            static=frame.static, **values)

    def rollouts(self, frame: Frame, rows: Sequence[Row], namespaces: Sequence[str], *,
                 namespace: str, phase: str, stream: str) -> str:
        return self._render("list.html", frame, rows=rows, namespaces=namespaces,
                            namespace=namespace, phase=phase, phases=PHASES, stream=stream)

    def row(self, frame: Frame, row: Row) -> str:
        return self._env.get_template("row.html").render(r=row, root=frame.root)

    def detail(self, frame: Frame, detail: Detail, *, stream: str) -> str:
        return self._render("detail.html", frame, d=detail, operations=OPERATIONS,
                            stream=stream)

    def detail_body(self, detail: Detail | None) -> str:
        return self._env.get_template("detail_body.html").render(d=detail)
