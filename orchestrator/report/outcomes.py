"""The client's sentence for what a run found: one per kind of finding, in the client's
language (``reports/<language>/outcomes.yaml``). The hotline reads the technical message; the
client reads this, which names no host, path or code."""

from __future__ import annotations

import functools

import yaml

from orchestrator.findings import Finding, Missed, RunFailed, RunStatus
from orchestrator.resources import read_text, report_files


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
