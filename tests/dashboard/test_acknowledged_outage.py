"""An outage is acknowledged once: the acknowledgement holds over every new failure of the same
job, showing who and when, until the job succeeds again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.dashboard.site import Site, csrf_of

ACK = "marie, le 24/11/2026 22:00\u00a0: hôte en maintenance"


def _ack_cell(home: str, job: str) -> str:
    import re

    row = re.search(rf'<tr class="problem" data-client="acme" data-job="{job}"[^>]*>(.*?)</tr>',
                    home, re.S)
    assert row, f"no row for acme/{job} on the home page"
    cell = re.search(r'<td class="ack">(.*?)</td>', row.group(1), re.S)
    assert cell
    return re.sub(r"<[^>]+>", "", cell.group(1)).strip()


def test_an_acknowledged_outage_stays_acknowledged_until_the_job_succeeds(
        tmp_path: Path) -> None:
    site = Site(tmp_path)  # acme/partages: good on the 23rd, host unreachable on the 24th
    site.s.loaded.config.clients["acme"].hosts["hv01"].simulated.faults[0].dates.append(
        site.clock.now().date() + timedelta(days=1))
    web = site.login("marie")
    run = web.get(f"/runs/{site.failed.uid}").text
    answer = web.post(f"/runs/{site.failed.uid}/acknowledge",
                      data={"comment": "hôte en maintenance", "csrf": csrf_of(run)})
    assert answer.status_code == 303
    assert _ack_cell(web.get("/").text, "partages") == \
        ACK

    site.clock.advance(timedelta(days=1))  # the host is still down the next night
    again = site.s.run("partages")
    assert again.status == "ECHEC"
    web = site.login("marie")  # a new day, a new session (they last 12 hours)
    home = web.get("/").text
    assert f'href="/runs/{again.uid}"' in home  # the row is about the new failure...
    assert _ack_cell(home, "partages") == ACK

    site.clock.advance(timedelta(days=1))  # the host is back: the job succeeds
    assert site.s.run("partages").status == "REUSSIE"
    web = site.login("marie")
    assert 'data-job="partages"' not in web.get("/").text
    site.clock.advance(timedelta(days=1))
    site.s.loaded.config.clients["acme"].hosts["hv01"].simulated.faults[0].dates.append(
        site.clock.now().date())
    assert site.s.run("partages").status == "ECHEC"  # a new outage: not acknowledged yet
    web = site.login("marie")
    assert _ack_cell(web.get("/").text, "partages") == "Prendre en charge"  # its form
