"""Rendering a message from the templates of reports/<language>/ (subject, text, HTML)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from orchestrator.humanize import duration, size
from orchestrator.resources import read_text, report_files


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _environment(language: str, tz: ZoneInfo) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: read_text(report_files(), name)),
        autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )
    env.filters["size"] = lambda n: "-" if n is None else size(float(n), language)
    env.filters["dur"] = lambda s: "-" if s is None else duration(float(s), language)
    env.filters["dt"] = lambda t: "-" if t is None else _local(t, tz)
    env.filters["date"] = lambda t: "-" if t is None else _day(t, tz)
    return env


def _day(when: date | datetime, tz: ZoneInfo) -> str:
    """A day as people read it: a time is first put in the MSP's time zone."""
    day = when.astimezone(tz).date() if isinstance(when, datetime) else when
    return day.strftime("%d/%m/%Y")


def _local(when: datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%d/%m %H:%M")


def render(kind: str, language: str, tz: ZoneInfo, **context: Any) -> Rendered:
    env = _environment(language, tz)
    subject = env.get_template(f"{language}/{kind}.subject.txt").render(**context).strip()
    text = env.get_template(f"{language}/{kind}.text.txt").render(**context)
    # The HTML part gets the text as a plain str: a template that includes the text template
    # would capture it as markup and leave what the host or the configuration said unescaped.
    html = env.get_template(f"{language}/{kind}.html").render(subject=subject, text_part=text,
                                                               **context)
    return Rendered(" ".join(subject.split()), text, html)
