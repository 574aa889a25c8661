"""The value parsers of the options in :data:`pytest_cilium_upgrade.options.OPTIONS`.

Each parser takes a raw value (a string from the command line, the environment or
an INI-style file; a bool, int or float from native TOML) and returns the typed
value, or raises :class:`ValueError` with a message that does not repeat the
option's name (the caller adds the name and the source).

Relative paths are made absolute against :attr:`ParseContext.base`, the directory
the value's source implies. Like the option table, this module is loaded by every
pytest run, so it stays light.
"""

from __future__ import annotations

import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pytest_cilium_upgrade.versions import Version, VersionError

__all__ = [
    "ParseContext",
    "Parser",
    "absolute_path",
    "choice_of",
    "parse_bool",
    "parse_chart",
    "parse_chart_repo",
    "parse_executable",
    "parse_kubeconfig",
    "parse_minor_version",
    "parse_namespace",
    "parse_non_negative_int",
    "parse_path",
    "parse_paths",
    "parse_positive_seconds",
    "parse_release",
    "parse_set_values",
    "parse_text",
    "parse_version",
]

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})

# Helm's release name rule (a DNS-1123 subdomain of at most 53 characters) and
# the Kubernetes namespace rule (a DNS-1123 label).
_HELM_RELEASE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HELM_RELEASE_MAX = 53
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL_MAX = 63
_MINOR = re.compile(r"^\d+\.\d+(\.\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class ParseContext:
    """What a parser may need besides the raw value."""

    base: Path
    environ: Mapping[str, str]


Parser = Callable[[object, ParseContext], Any]


def _type_name(raw: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(raw), type(raw).__name__
    )


def _text(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected text, got {_type_name(raw)} {raw!r}")
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def parse_bool(raw: object, ctx: ParseContext | None = None) -> bool:
    """1/0, true/false, yes/no, on/off in any case (and TOML booleans)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    raise ValueError(f"{raw!r} is not a boolean (use 1/0, true/false, yes/no or on/off)")


def choice_of(choices: Sequence[str]) -> Parser:
    """A parser that takes one of ``choices``, in any case."""

    def parse(raw: object, ctx: ParseContext) -> str:
        value = _text(raw).lower()
        if value not in choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
        return value

    return parse


def parse_namespace(raw: object, ctx: ParseContext) -> str:
    value = _text(raw)
    if len(value) > _DNS_LABEL_MAX or not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid namespace name (lower-case letters, digits and '-',"
            f" at most {_DNS_LABEL_MAX} characters)"
        )
    return value


def parse_release(raw: object, ctx: ParseContext) -> str:
    value = _text(raw)
    if len(value) > _HELM_RELEASE_MAX or not _HELM_RELEASE.match(value):
        raise ValueError(
            f"{value!r} is not a valid Helm release name (lower-case letters, digits, '-'"
            f" and '.', at most {_HELM_RELEASE_MAX} characters)"
        )
    return value


def parse_text(raw: object, ctx: ParseContext) -> str:
    return _text(raw)


def parse_version(raw: object, ctx: ParseContext) -> Version:
    value = _text(raw)
    try:
        return Version.parse(value)
    except VersionError as exc:
        raise ValueError(
            f"{value!r} is not a semantic version (for example 1.16.5 or v1.16.5)"
        ) from exc


def parse_non_negative_int(raw: object, ctx: ParseContext) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"expected a whole number, got {_type_name(raw)} {raw!r}")
    if isinstance(raw, str):
        if not _INTEGER.match(raw.strip()):
            raise ValueError(f"{raw!r} is not a whole number")
        raw = int(raw.strip())
    if raw < 0:
        raise ValueError(f"{raw} is negative (must be 0 or more)")
    return raw


# The longest time a timeout may be: a week is far beyond any CI job, and far below what
# the clocks of sockets, locks and subprocesses can hold (1e10 s overflows them).
MAX_SECONDS = 7 * 24 * 3600


def parse_positive_seconds(raw: object, ctx: ParseContext) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"expected a number of seconds, got {_type_name(raw)} {raw!r}")
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError as exc:
            raise ValueError(f"{raw!r} is not a number of seconds") from exc
    else:
        value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{raw!r} is not a positive number of seconds")
    if value > MAX_SECONDS:
        raise ValueError(f"{raw!r} is more than a week ({MAX_SECONDS} seconds)")
    return value


def _expand_home(text: str, environ: Mapping[str, str]) -> str:
    if text == "~" or text.startswith("~/") or text.startswith("~" + os.sep):
        home = environ.get("HOME")
        if home:
            return home + text[1:]
    return os.path.expanduser(text)


def absolute_path(text: str, ctx: ParseContext) -> Path:
    """``text`` with ``~`` expanded, made absolute against ``ctx.base`` and normalised."""
    path = Path(_expand_home(text, ctx.environ))
    if not path.is_absolute():
        path = ctx.base / path
    return Path(os.path.normpath(path))


def parse_path(raw: object, ctx: ParseContext) -> Path:
    return absolute_path(_text(raw), ctx)


def _items(raw: object) -> list[str]:
    """A repeatable option: a list (command line, ini lines) or one item per line (env)."""
    if isinstance(raw, list | tuple):
        items = [str(item) for item in raw]
    elif raw is None or (isinstance(raw, str) and not raw.strip()):
        items = []
    else:
        items = _text(raw).splitlines()
    return [item.strip() for item in items if item.strip()]


def parse_paths(raw: object, ctx: ParseContext) -> tuple[Path, ...]:
    return tuple(absolute_path(item, ctx) for item in _items(raw))


def parse_set_values(raw: object, ctx: ParseContext) -> tuple[str, ...]:
    values = _items(raw)
    for item in values:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} is not KEY=VALUE (as helm --set takes it)")
    return tuple(values)


def parse_minor_version(raw: object, ctx: ParseContext) -> str:
    value = _text(raw).removeprefix("v")
    if not _MINOR.match(value):
        raise ValueError(f"{raw!r} is not a Cilium version such as 1.14 or 1.14.3")
    return value


def parse_kubeconfig(raw: object, ctx: ParseContext) -> str:
    """One file or a list separated like $KUBECONFIG; empty entries are ignored."""
    parts = [p.strip() for p in _text(raw).split(os.pathsep) if p.strip()]
    if not parts:
        raise ValueError(f"{raw!r} names no file")
    return os.pathsep.join(str(absolute_path(p, ctx)) for p in parts)


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~", "." + os.sep, ".." + os.sep)) or (
        os.altsep is not None and text.startswith(os.altsep)
    )


def parse_chart(raw: object, ctx: ParseContext) -> str:
    """A repository reference stays as it is; a local chart becomes an absolute path.

    Like Helm, an existing local directory or archive wins over a repository
    reference of the same spelling.
    """
    value = _text(raw)
    if "://" in value:
        return value
    if _looks_like_path(value) or os.path.exists(ctx.base / _expand_home(value, ctx.environ)):
        return str(absolute_path(value, ctx))
    return value


def parse_chart_repo(raw: object, ctx: ParseContext) -> str:
    """A chart repository URL (http or https), without credentials: it is shown in
    reports and in every helm command. The chart source checks the rest."""
    value = _text(raw)
    if not value.startswith(("https://", "http://")):
        shown = repr(value) if "@" not in value else "the value"
        raise ValueError(f"{shown} is not a chart repository URL (https://... or http://...)")
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid URL: {exc}") from exc
    if "@" in parts.netloc:
        raise ValueError(
            "the URL holds credentials, which reports and helm commands would show: add"
            " the repository to helm yourself (helm repo add NAME URL --username USER"
            " --password-stdin) and give --cilium-chart NAME/cilium"
        )
    return value


def parse_executable(raw: object, ctx: ParseContext) -> str:
    """A bare name is looked up on PATH; anything with a directory part is a path."""
    value = _text(raw)
    if os.sep in value or (os.altsep is not None and os.altsep in value):
        return str(absolute_path(value, ctx))
    return value
