"""The client's sentence for what a run found: one per kind of finding, in the client's
language (``reports/<language>/outcomes.yaml``). The hotline reads the technical message; the
client reads this, which names no host, path or code."""

from __future__ import annotations

import functools
import re

import yaml

from orchestrator.findings import Finding, Missed, RunFailed, RunStatus
from orchestrator.resources import read_text, report_files, runbook_files


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    loaded = yaml.safe_load(read_text(report_files(), f"{language}/outcomes.yaml"))
    return {str(k): str(v) for k, v in loaded.items()}


def client_sentences(findings: list[Finding], status: RunStatus, language: str) -> list[str]:
    """What the client is told of a run, one sentence per finding (the same sentence once).
    A run recorded before findings were kept is told by its status alone."""
    if not findings and status == RunStatus.ECHEC:
        findings = [RunFailed(None, "HVB-ERROR", "")]
    elif not findings and status == RunStatus.NON_EXECUTEE:
        findings = [Missed(None, "HVB-RUN-MISSED", "")]
    elif not findings and status == RunStatus.AVERTISSEMENT:
        findings = [Finding(None, "HVB-ERROR", "")]
    words = catalogue(language)
    said: list[str] = []
    for finding in findings:
        text = words.get(finding.key, words["finding"]).format(object=finding.object or "")
        text = text[:1].upper() + text[1:]
        if text not in said:
            said.append(text)
    return said


@functools.cache
def hotline_catalogue(language: str) -> dict[str, str]:
    loaded = yaml.safe_load(read_text(report_files(), f"{language}/hotline.yaml"))
    return {str(k): str(v) for k, v in loaded.items()}


# Codes whose runbook title adds nothing to the finding's own sentence.
_PLAIN_CODES = {"HVB-ERROR", "HVB-RUN-MISSED", "HVB-RUN-INTERRUPTED", "HVB-INTERNAL"}


@functools.cache
def cause(code: str | None, language: str) -> str | None:
    """The cause an error code names, in the hotline's language: its runbook's title
    (``# HVB-HOST-UNREACHABLE — Hôte injoignable``), first letter lowered unless it is an
    acronym. None for a generic code or one without a runbook."""
    if not code or code in _PLAIN_CODES or not re.fullmatch(r"HVB-[A-Z0-9-]+", code):
        return None
    page = runbook_files() / ("fr" if language == "fr" else "en") / f"{code}.md"
    if not page.is_file():
        return None
    first = page.read_text(encoding="utf-8").splitlines()[0]
    title = first.partition("—")[2].strip()
    if not title:
        return None
    return title[:1].lower() + title[1:] if title[1:2].islower() else title


def hotline_sentence(finding: Finding, language: str) -> str:
    """What the hotline reads first of a finding, in its language, from the finding's kind,
    object and code (its message, the technician's English, is shown apart)."""
    words = hotline_catalogue("fr" if language == "fr" else "en")
    text = words.get(finding.key, words["finding"]).format(object=finding.object or "-")
    said = cause(finding.code, language)
    if said:
        text += f" ({said})"
    return text


def technical(finding: Finding) -> str:
    """The technician's line of a finding: its codes and its original message."""
    codes = finding.code + (f" {finding.script_code}" if finding.script_code else "")
    return f"{codes}: {finding.headline}" if finding.message else codes
