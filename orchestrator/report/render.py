"""Rendering a message from the templates of reports/<language>/ (subject, text, HTML)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from orchestrator.humanize import duration, size, typography
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
    env.filters["word"] = lambda status: status_word(status, language)
    env.filters["what"] = lambda job: objects_words(job.type, job.objects, language)
    env.filters["de"] = lambda name: of_name(str(name), language)
    return env


# A status in the reader's words (the bracketed subject tokens stay machine-readable).
_STATUS_WORDS = {
    "fr": {"REUSSIE": "Réussie", "ECHEC": "Échec", "AVERTISSEMENT": "Avertissement",
           "NON EXECUTEE": "Non exécutée", "EN COURS": "En cours",
           "INHABITUELLE": "Inhabituelle"},
    "en": {"REUSSIE": "Succeeded", "ECHEC": "Failed", "AVERTISSEMENT": "Warning",
           "NON EXECUTEE": "Not run", "EN COURS": "In progress", "INHABITUELLE": "Unusual"},
}
_ALL_OBJECTS = {"fr": {"sql-server": "toutes les bases", "hyperv-vm": "toutes les VM",
                       "files": "tous les dossiers"},
                "en": {"sql-server": "all databases", "hyperv-vm": "all VMs",
                       "files": "all folders"}}


def status_word(status: object, language: str) -> str:
    words = _STATUS_WORDS["fr" if language == "fr" else "en"]
    text = str(getattr(status, "value", status))
    return words.get(text, text)


def objects_words(kind: str, objects: list[str], language: str) -> str:
    """What a job saves, as the client says it: ``all`` of a SQL Server job is "toutes les
    bases", never the configuration's keyword."""
    words = _ALL_OBJECTS["fr" if language == "fr" else "en"]
    return ", ".join(words.get(kind, o) if o == "all" else o for o in objects)


def of_name(name: str, language: str) -> str:
    """French "de" before a name, elided before a vowel sound (``d'ACME``, ``de Durand``);
    in English, "of"."""
    if language != "fr":
        return f"of {name}"
    return f"d'{name}" if name[:1].lower() in "aeiouyàâéèêëîïôöûü" else f"de {name}"


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
    # French typography (no-break spaces before ":" and in "134 Mo") on the parts the reader
    # reads, the technical text quoted in them included; English is left as written. Not on
    # the subject: Python's header folding drops the space between two encoded words, and a
    # no-break space makes a long subject one (``volumesouscrit``).
    return Rendered(" ".join(subject.split()), typography(text, language),
                    typography(html, language))
