"""What an option of the gate is: an :class:`OptionSpec` (its command-line flag,
environment variable, ini key, parser and default), built by :func:`option` from the
option's name, and the :class:`Source` a resolved value came from.

The table of the options is :data:`pytest_cilium_upgrade.options.OPTIONS`. Every pytest
run of an environment that has the plugin installed loads this module with it, so it
stays light.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import pytest

from pytest_cilium_upgrade.option_parsers import Parser

FLAG_PREFIX: Final = "--cilium-"
ENV_PREFIX: Final = "CILIUM_UPGRADE_"
INI_PREFIX: Final = "cilium_upgrade_"

# The TOML-native value types an ini option may accept besides strings (from pytest
# 9.2, see :func:`pytest_cilium_upgrade.options.register`).
IniValue = Literal["text", "bool", "int", "number"]


# --------------------------------------------------------------------------- sources


class SourceKind(enum.Enum):
    """Where a resolved value came from."""

    CLI = "command line"
    ENV = "environment"
    INI = "ini"
    FALLBACK = "fallback"
    DEFAULT = "default"


@dataclass(frozen=True)
class Source:
    """Where a raw value came from, and the directory its relative paths are taken from."""

    kind: SourceKind
    description: str
    base: Path


Fallback = Callable[[pytest.Config, Mapping[str, str]], tuple[object, Source] | None]


# --------------------------------------------------------------------------- the spec

OptionKind = Literal["enable", "bool", "value", "list"]


@dataclass(frozen=True)
class OptionSpec:
    """One option: its command-line flag, environment variable, ini key and parser.

    ``default`` is a raw value run through ``parse`` like any other (relative to
    the rootdir); ``None`` means the setting is unset. ``fallback`` is consulted
    between the ini option and the default.
    """

    flag: str
    dest: str
    attr: str
    help: str
    parse: Parser
    default: object
    env: str | None
    ini: str | None
    kind: OptionKind = "value"
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    default_doc: str | None = None
    fallback: Fallback | None = None
    # The TOML-native value types the ini option accepts besides strings.
    ini_value: IniValue = "text"

    @property
    def flags(self) -> tuple[str, ...]:
        """Every spelling on the command line (``--no-...`` for booleans)."""
        if self.kind == "bool":
            return (self.flag, "--no-" + self.flag.removeprefix("--"))
        return (self.flag,)

    def describe(self) -> str:
        """The help text with the choices spelled out."""
        text = self.help
        if self.choices:
            text += " One of " + ", ".join(f"`{c}`" for c in self.choices) + "."
        return text

    def default_text(self) -> str:
        if self.default_doc is not None:
            return self.default_doc
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        return f"`{self.default}`"


def option(
    name: str,
    help: str,
    parse: Parser,
    default: object,
    *,
    attr: str | None = None,
    kind: OptionKind = "value",
    choices: tuple[str, ...] = (),
    metavar: str | None = None,
    default_doc: str | None = None,
    fallback: Fallback | None = None,
    cli_only: bool = False,
    ini_value: IniValue = "text",
) -> OptionSpec:
    """The spec of option ``name``: flag ``--cilium-<name>``, environment variable
    ``CILIUM_UPGRADE_<NAME>`` and ini key ``cilium_upgrade_<name>`` (neither of these
    two with ``cli_only``)."""
    suffix = name.replace("-", "_")
    return OptionSpec(
        flag=FLAG_PREFIX + name,
        dest="cilium_" + suffix,
        attr=attr or suffix,
        help=help,
        parse=parse,
        default=default,
        env=None if cli_only else ENV_PREFIX + suffix.upper(),
        ini=None if cli_only else INI_PREFIX + suffix,
        kind=kind,
        choices=choices,
        metavar=metavar,
        default_doc=default_doc,
        fallback=fallback,
        ini_value="bool" if kind != "value" else ini_value,
    )
