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
    env.filters["tally"] = lambda d, form="subject": tally(d.counts, d.due_count, language, form)
    env.filters["clients"] = lambda digests: clients_tally(
        [d.headline for d in digests], language)
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


# How a count of jobs is said (singular, plural), by status or state (report/digest.py).
_TALLY_WORDS = {
    "fr": {"REUSSIE": ("réussie", "réussies"),
           "AVERTISSEMENT": ("avec avertissement", "avec avertissement"),
           "ECHEC": ("en échec", "en échec"), "NON EXECUTEE": ("non exécutée", "non exécutées"),
           "running": ("en cours", "en cours"), "waiting": ("en attente", "en attente"),
           "upcoming": ("prévue plus tard", "prévues plus tard")},
    "en": {"REUSSIE": ("succeeded", "succeeded"),
           "AVERTISSEMENT": ("with a warning", "with warnings"),
           "ECHEC": ("failed", "failed"), "NON EXECUTEE": ("not run", "not run"),
           "running": ("in progress", "in progress"), "waiting": ("waiting", "waiting"),
           "upcoming": ("due later", "due later")},
}
# How a count of clients is said in the hotline's summary, by the tag of their night.
_CLIENT_WORDS = {
    "fr": {"ECHEC": "en échec", "NON EXECUTEE": "avec une sauvegarde non exécutée",
           "AVERTISSEMENT": "avec un avertissement", "EN COURS": "avec une sauvegarde en cours",
           "REUSSIE": "sans problème"},
    "en": {"ECHEC": "failing", "NON EXECUTEE": "with a backup not run",
           "AVERTISSEMENT": "with a warning", "EN COURS": "with a backup in progress",
           "REUSSIE": "fine"},
}


def tally(counts: dict[str, int], due: int, language: str, form: str = "subject") -> str:
    """A night's jobs in counts, as the reader says them: ``2 réussies, 1 non exécutée, 1 en
    cours``; ``3/3 réussies`` when every due job succeeded. ``form="rest"``: what follows
    "2/4 tâches réussies" (the jobs not succeeded, and those with a warning among the
    succeeded), e.g. ``, 1 non exécutée, 1 en cours``."""
    fr = language == "fr"
    words = _TALLY_WORDS["fr" if fr else "en"]

    def said(key: str, n: int) -> str:
        return f"{n} {words[key][n > 1]}"

    if form == "rest":
        parts = [said(k, n) for k, n in counts.items() if k not in ("REUSSIE", "AVERTISSEMENT")]
        if "AVERTISSEMENT" in counts:
            warned = said("AVERTISSEMENT", counts["AVERTISSEMENT"])
            parts.insert(0, f"dont {warned}" if fr else f"{warned} among them")
        return "".join(f", {p}" for p in parts)
    if not counts:
        return "aucune sauvegarde prévue" if fr else "no backup due"
    # As the body says it: a job with a warning succeeded ("3/3 réussies, dont 1 avec
    # avertissement"), the others after.
    ok = counts.get("REUSSIE", 0) + counts.get("AVERTISSEMENT", 0)
    parts = []
    if ok:
        parts.append(f"{due}/{due} {words['REUSSIE'][due > 1]}" if ok == due
                     else said("REUSSIE", ok))
        if counts.get("AVERTISSEMENT"):
            warned = said("AVERTISSEMENT", counts["AVERTISSEMENT"])
            parts.append(f"dont {warned}" if fr else f"{warned} among them")
    parts += [said(k, n) for k, n in counts.items() if k not in ("REUSSIE", "AVERTISSEMENT")]
    return ", ".join(parts)


def clients_tally(tags: list[str], language: str) -> str:
    """The summary's clients in counts by the tag of their night, most serious first: ``3
    clients : 1 en échec, 1 avec une sauvegarde en cours, 1 sans problème``."""
    from orchestrator.report.digest import TAGS

    fr = language == "fr"
    words = _CLIENT_WORDS["fr" if fr else "en"]
    parts = [f"{tags.count(t)} {words[t]}" for t in TAGS if t in tags]
    n = len(tags)
    head = f"{n} client{'s' if n > 1 else ''}"
    return f"{head}{' :' if fr else ':'} {', '.join(parts)}" if parts else head


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
