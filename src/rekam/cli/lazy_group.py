"""A command group that imports a subcommand's module only when that subcommand runs.

Rekam's command groups need heavy libraries (SciPy for the ECG, pydicom for DICOM, SQLAlchemy for
the records, the web framework for ``serve``). Importing all of them before every command made
``rekam version`` take seconds. :class:`LazyGroup` knows each subcommand by name and by where it
lives, and imports that module when the subcommand is asked for (to run it, or to show its help).
``rekam --help`` lists every subcommand, so it still imports them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, ClassVar

import typer
from typer import _click as click  # Typer carries its own Click; its groups use these types
from typer.core import TyperGroup

__all__ = ["LazyCommand", "LazyGroup", "lazy_group"]


@dataclass(frozen=True)
class LazyCommand:
    """Where a subcommand lives: ``module:attribute``, a Typer app (a group) or a function."""

    target: str

    def load(self, name: str) -> click.Command:
        loaded = _resolve(self.target)
        if isinstance(loaded, typer.Typer):
            command: click.Command = typer.main.get_group(loaded)
        else:
            single = typer.Typer(add_completion=False)
            single.command(name)(loaded)
            command = typer.main.get_command(single)
        command.name = name
        return command


def _resolve(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


class LazyGroup(TyperGroup):
    """A Typer group whose subcommands in :attr:`lazy` are imported on first use.

    Subcommands registered directly are listed first, then those of :attr:`lazy` in order.
    """

    lazy: ClassVar[Mapping[str, LazyCommand]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        # Typer suggests only among loaded commands; this group suggests among all of them.
        self.suggest_among_all, self.suggest_commands = self.suggest_commands, False

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.UsageError as error:
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if self.suggest_among_all and matches:
                suggestions = ", ".join(repr(match) for match in matches)
                error.message = f"{error.message.rstrip('.')}. Did you mean {suggestions}?"
            raise

    def list_commands(self, ctx: click.Context) -> list[str]:
        direct = [name for name in super().list_commands(ctx) if name not in self.lazy]
        return [*direct, *self.lazy]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.commands[cmd_name] = self.lazy[cmd_name].load(cmd_name)
        return super().get_command(ctx, cmd_name)


def lazy_group(commands: Mapping[str, LazyCommand]) -> type[LazyGroup]:
    """A :class:`LazyGroup` class for these subcommands (Typer takes a class, not an instance)."""
    return type("LazyRekamGroup", (LazyGroup,), {"lazy": commands})
