"""Help text in the words of the command line, not of Python.

Typer 0.29 shows each parameter's Python annotation in the help (`--keep <bool>`,
`<list[Path]>`) and writes a required argument as `{name}` in the usage line. `RolloutsGroup`
(the app's group class) gives every command's parameters the kubectl style instead: flags
show no type, options show a placeholder (`--port INTEGER`, `--output json|yaml`, `--kubeconfig
PATH`), arguments are upper-case (`rollouts get [OPTIONS] NAME`, `lint PATHS...`).
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperGroup, TyperOption

# Placeholders by Python type name, as click itself names them.
_PLACEHOLDERS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH"}


# (typer vendors click: its Context and Parameter types are typer's own, hence `Any` below.)
class _Option(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        if self.metavar is not None:
            return self.metavar
        typed = self.display_type(ctx).strip("<>")
        if "|" in typed:
            return typed.removeprefix("list[").removesuffix("]")
        return _PLACEHOLDERS.get(typed.removeprefix("list[").removesuffix("]"), typed.upper())


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the upper-case name says what to give

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def _restyle(params: list[Any]) -> list[Any]:
    for param in params:
        # Same fields, other presentation: only methods differ between the classes.
        if type(param) is TyperOption:
            param.__class__ = _Option
        elif type(param) is TyperArgument:
            param.__class__ = _Argument
    return params


def _restyle_command(command: Any) -> None:
    # Commands are built by typer (always TyperCommand): restyle whatever they list, including
    # the options click and typer add on demand (--help, --install-completion).
    get_params = command.get_params
    command.get_params = lambda ctx: _restyle(get_params(ctx))


class RolloutsGroup(TyperGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _restyle_command(self)
        for command in self.commands.values():
            _restyle_command(command)
