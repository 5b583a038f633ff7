"""Every error code the product can report has its runbook, in French and English, and every
code a host script can return is explained on the HVB-SCRIPT-FAILED page; no page is left for a
code that no longer exists."""

from __future__ import annotations

import re

from tests.conftest import REPO

RUNBOOKS = REPO / "docs" / "runbooks"


def _hvb_codes() -> set[str]:
    codes: set[str] = set()
    for path in (REPO / "orchestrator").rglob("*.py"):
        codes |= set(re.findall(r"[\"'](HVB-[A-Z0-9-]+)[\"']", path.read_text(encoding="utf-8")))
    return codes


def _script_codes() -> set[str]:
    codes: set[str] = set()
    pattern = re.compile(r"'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|TIMEOUT)'")
    for path in [*(REPO / "powershell").glob("*.ps1"),
                 *(REPO / "powershell" / "onboarding").glob("*.ps1")]:
        # VSS_E_... are Windows' names for VSS errors, which the scripts look for in
        # DiskShadow's output, not codes they return.
        codes |= {c for c in pattern.findall(path.read_text(encoding="utf-8"))
                  if not c.startswith("VSS_E_")}
    simulator = (REPO / "orchestrator" / "hosts" / "simulated.py").read_text(encoding="utf-8")
    codes |= set(re.findall(r"\"code\": \"([A-Z_]+)\"", simulator))
    codes |= set(re.findall(r"_ScriptError\(\"([A-Z_]+)\"", simulator))
    return codes


def test_every_error_code_has_its_runbook_in_both_languages() -> None:
    codes = _hvb_codes()
    assert len(codes) > 20  # the scan found the codes (it can fail)
    for language in ("fr", "en"):
        pages = {p.stem for p in (RUNBOOKS / language).glob("HVB-*.md")}
        assert codes - pages == set(), f"codes without a {language} runbook"
        assert pages - codes == set(), f"{language} runbooks of codes that no longer exist"
        index = (RUNBOOKS / language / "README.md").read_text(encoding="utf-8")
        for code in codes:
            page = (RUNBOOKS / language / f"{code}.md").read_text(encoding="utf-8")
            assert page.startswith(f"# {code} — ")
            assert page.count("\n## ") >= 3  # what it means, what to check, how to fix
            assert f"]({code}.md)" in index


def test_every_host_script_code_is_explained() -> None:
    codes = _script_codes()
    assert {"GUEST_VSS_FAILED", "STAGING_FULL", "TIMEOUT", "CHECKPOINT_FAILED",
            "ACCESS_DENIED"} <= codes
    for language in ("fr", "en"):
        page = (RUNBOOKS / language / "HVB-SCRIPT-FAILED.md").read_text(encoding="utf-8")
        missing = {c for c in codes if f"| `{c}` |" not in page}
        assert missing == set(), f"script codes missing from the {language} page"
