"""JSON objects as the API server and helm print them, and the lenient readers of their fields.

:data:`JSONDict` is the package's one name for a decoded JSON object: the adapters
return it and the model's constructors read it. The readers turn a field of any
shape into the type the model keeps, and fall back to Kubernetes' defaults where a
field is missing or of another type, so rendered manifests (no status) and partial
fixtures load too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JSONDict = dict[str, Any]


def as_map(value: object) -> JSONDict:
    if type(value) is dict:  # nearly always: skip the slower abstract-class check
        return value
    return dict(value) if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any] | tuple[Any, ...]:
    return value if isinstance(value, list | tuple) else []


def as_str(value: object, default: str = "") -> str:
    if value is None:
        return default
    return value if isinstance(value, str) else str(value)


def as_int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return default
    return default


def opt_int(value: object) -> int | None:
    if value is None or value == "":
        return None
    return as_int(value)


def as_bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def as_labels(value: object) -> dict[str, str]:
    return {str(k): as_str(v) for k, v in as_map(value).items()}
