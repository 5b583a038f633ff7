"""The HTML digest, opened in headless Chromium: the table and the chart are there (the
screenshot is not blank, and has the status colours), as a client's mail reader would show it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO
from tests.world import Setup

ARTIFACTS = REPO / "test-artifacts"


@pytest.mark.slow
def test_digest_renders_in_chromium(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail("Chromium is not installed: run `make services` (make test does it)")
    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}",
              consistency="application-or-crash")
    for job in ("partages", "erp", "compta"):
        s.run(job)
    page = tmp_path / "digest.html"
    assert cli("report", "-c", str(s.config), "acme", "--date", "2026-11-23", "--preview",
               str(page)).code == 0
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "digest.png"
    subprocess.run([str(chromium), "--headless", "--no-sandbox", "--disable-gpu",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=800,1400",
                    f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 50, "the screenshot is (nearly) blank"
    amber = (0xB3, 0x6B, 0x00)  # AVERTISSEMENT: the header band and the flagged job
    assert any(c == amber for _n, c in colours)
    green = (0x1E, 0x7E, 0x34)  # REUSSIE jobs, and their bars in the chart
    assert any(c == green for _n, c in colours)


@pytest.mark.slow
def test_digest_reads_on_a_phone(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """At 390 px wide, as a phone's mail reader lays it out: the page is not shrunk (its
    layout is the phone's width, nothing wider), the text keeps a readable size, and the
    30-day strip says which nights it shows."""
    from playwright.sync_api import sync_playwright

    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}")
    for job in ("partages", "erp", "compta"):
        s.run(job)
    page_file = tmp_path / "digest.html"
    assert cli("report", "-c", str(s.config), "acme", "--date", "2026-11-23", "--preview",
               str(page_file)).code == 0
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu"])
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                    has_touch=True, device_scale_factor=2)
        page = phone.new_page()
        page.goto(page_file.as_uri())
        page.screenshot(path=str(ARTIFACTS / "digest-phone.png"), full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        layout = page.evaluate("window.innerWidth")
        size = page.evaluate("parseFloat(getComputedStyle(document.querySelector("
                             "'.job-status')).fontSize)")
        strip = page.inner_text(".strip-dates")
        browser.close()
    assert layout == 390, f"laid out {layout} px wide, then shrunk to the phone"
    assert width <= 390, f"the digest is {width} px wide on a 390 px phone"
    assert size >= 13
    assert "23/11" in strip  # the strip's last night, and its first
