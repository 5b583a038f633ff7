"""The YAML reference, generated from the models (their types, defaults, limits and attribute
docstrings), so that it cannot drift from what ``hvbackup validate`` accepts.

    python -m orchestrator.config.reference > docs/configuration-reference.md

A test fails when the committed file differs from what this prints.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from orchestrator.config import models

HEADER = """\
# Configuration reference

Generated from `orchestrator/config/models.py` by `python -m orchestrator.config.reference`;
do not edit by hand. Every key is checked by `hvbackup validate`, which names the file, line,
key path and bad value of each mistake. An unknown key is an error. Secrets are never written
in the file: `password_env` names an environment variable, `password_file` a file.
"""


def _type(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type(get_args(annotation)[0])
    if origin is Literal:
        return " \\| ".join(f"`{v}`" for v in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a) for a in get_args(annotation) if a is not type(None)]
        return " \\| ".join(parts)
    if origin is list:
        return f"list of {_type(get_args(annotation)[0])}"
    if origin is dict:
        return f"map of name → {_type(get_args(annotation)[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{_title(annotation)}](#{_anchor(annotation)})"
    name = getattr(annotation, "__name__", str(annotation))
    return {"str": "text", "int": "integer", "float": "number", "bool": "true \\| false",
            "date": "date (YYYY-MM-DD)", "Schedule": "schedule",
            "ZoneInfo": "time zone"}.get(name, name)


def _limits(field: FieldInfo) -> str:
    words = []
    for item in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if isinstance(item, getattr(annotated_types, attr.capitalize())):
                words.append(f"{sign} {getattr(item, attr)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            words.append("not empty")
        pattern = getattr(item, "pattern", None)
        if pattern:
            words.append(f"matches `{pattern}`".replace("|", "\\|"))
    return ", ".join(words)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            shown = ", ".join(f"{k}: {v}" for k, v in value.model_dump(exclude_none=True).items())
            return f"`{shown}`"
        return "empty" if not value else f"`{value}`"
    value = field.default
    if value is None or value is PydanticUndefined:
        return "-"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{getattr(value, 'key', value)}`"


def _title(model: type[BaseModel]) -> str:
    return {"Config": "top level", "Msp": "msp", "Smtp": "smtp", "SftpBaie": "baie (sftp)",
            "LocalBaie": "baie (local)", "Bandwidth": "bandwidth", "Encryption": "encryption",
            "Client": "client", "Site": "site", "Host": "host", "WinrmSettings": "winrm",
            "SimulatedSettings": "simulated", "SimulatedFault": "simulated fault",
            "Retention": "retention", "HypervVmJob": "job (hyperv-vm)",
            "SqlServerJob": "job (sql-server)", "FilesJob": "job (files)"}.get(
        model.__name__, model.__name__)


def _anchor(model: type[BaseModel]) -> str:
    return _title(model).replace(" (", "-").replace(")", "").replace(" ", "-")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def reference() -> str:
    """The whole reference, as Markdown."""
    order: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [models.Config]
    while pending:
        model = pending.pop(0)
        if model in order:
            continue
        order.append(model)
        for field in model.model_fields.values():
            pending += [m for m in _models_in(field.annotation) if m not in order]
    out = [HEADER]
    for model in order:
        out.append(f"## {_title(model)}\n")
        doc = (model.__doc__ or "").strip()
        if doc and not doc.startswith(("A base", "!!")) and model.__module__ == models.__name__:
            out.append(" ".join(doc.split()) + "\n")
        out.append("| key | type | default | limits | meaning |")
        out.append("| --- | --- | --- | --- | --- |")
        for name, field in model.model_fields.items():
            key = field.alias or name
            meaning = " ".join((field.description or "").split()).replace("|", "\\|")
            out.append(f"| `{key}` | {_type(field.annotation)} | {_default(field)} | "
                       f"{_limits(field)} | {meaning} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(reference(), end="")
