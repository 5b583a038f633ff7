"""Every link the dashboard shows leads somewhere: followed from the home page through the
client, job, run and runbook pages, each answers and each #anchor is on its target, for runs
whose errors carry a host script's own code (GUEST_VSS_FAILED) and steps with their own
codes."""

from __future__ import annotations

import re
from collections import deque
from html import unescape
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

from orchestrator.dashboard.accounts import add_user
from orchestrator.dashboard.app import DashboardSettings, create_app
from tests.dashboard.site import Site
from tests.world import Setup

HREF = re.compile(r'href="([^"]+)"')


def test_every_link_resolves(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    s = Setup(tmp_path, faults="{kind: guest-vss-failure, target: ERP01}")
    failed = s.run("erp")
    assert failed.status == "ECHEC"
    s.run("partages")
    add_user(s.sessions, "marie", "hotline password 1", "hotline", None, "t", s.clock.now())
    web = TestClient(create_app(DashboardSettings(
        sessions=s.sessions, timezone=s.loaded.config.msp.timezone, language="fr",
        now=s.clock.now, secret="a secret for tests", secure_cookies=False)),
        follow_redirects=False)
    assert Site.post_login(web, {"username": "marie", "password": "hotline password 1",
                                    "next": "/"}).status_code == 303
    pages: dict[str, str] = {}
    anchors: list[tuple[str, str, str]] = []  # (from, page, anchor)
    todo = deque(["/", f"/runs/{failed.uid}"])
    while todo and len(pages) < 150:
        url = todo.popleft()
        if url in pages:
            continue
        answer = web.get(url)
        assert answer.status_code == 200, f"{url}: {answer.status_code}"
        pages[url] = answer.text
        for raw in HREF.findall(answer.text):
            link = unescape(raw)
            if link.startswith("?"):  # the language switch: this page again
                link = urlsplit(url).path + link
            target, anchor = urldefrag(link)
            if not target.startswith("/"):
                continue
            if anchor:
                anchors.append((url, target, anchor))
            todo.append(target)
    assert f"/runs/{failed.uid}" in pages
    assert any(a == "GUEST_VSS_FAILED" for _f, _t, a in anchors)
    seen = {urlsplit(p).path for p in pages}
    assert {"/runbooks/HVB-SCRIPT-FAILED", "/clients/acme", "/clients/acme/jobs/erp"} <= seen
    for origin, target, anchor in anchors:
        page = pages.get(target) or web.get(target).text
        assert f'id="{anchor}"' in page, f"{origin} links to {target}#{anchor}: no such anchor"
