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
