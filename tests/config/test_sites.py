"""Sites: hosts say which site's agent reaches them; an agent receives its site's part only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.config.load import load_config, load_config_text
from orchestrator.config.models import Config
from orchestrator.errors import UsageError
from tests.config.base import line_of
from tests.config.two_sites import BOBCO_TRACES, TWO_SITES
from tests.conftest import write_config

SERVER_ONLY = ["db.msp.example", "smtp.msp.example", "HVB_SMTP_PASSWORD",
               "5b3a0c2e-secret-uuid"]


def test_the_part_of_a_site_holds_nothing_of_another_site() -> None:
    loaded = load_config_text(TWO_SITES, "hvbackup.yaml")
    text = json.dumps(loaded.site_part("acme-siege"), ensure_ascii=False)
    for trace in BOBCO_TRACES + SERVER_ONLY:
        assert trace not in text, trace
    # Nor what ACME has on another site (its annex is reached from the central server).
    for trace in ["hv-acme-annexe", "annexe-acme.local", "annexe-files", "baie-central",
                  "/etc/hvbackup/annexe.pass"]:
        assert trace not in text, trace
    # What the agent needs is there, the secret as the name of its variable.
    for needed in ["hv01.acme.local", "erp-acme", "ERP01", "daily 22:00", "baie-acme-1",
                   "baie-acme-2", "ACME_WINRM_PASSWORD", "keys/acme.pub", "ACME, siège de Lyon"]:
        assert needed in text, needed


def test_the_part_of_a_site_loads_as_a_configuration_of_its_own() -> None:
    loaded = load_config_text(TWO_SITES, "hvbackup.yaml")
    part = Config.model_validate(loaded.site_part("bobco-usine"))
    assert list(part.clients) == ["bobco"]
    assert list(part.clients["bobco"].jobs) == ["usine-compta"]
    assert list(part.baies) == ["baie-bob"]
    assert part.sites["bobco-usine"].heartbeat_minutes == 15
    assert part.clients["bobco"].hosts["hv-bob"].winrm is not None
    assert part.clients["bobco"].hosts["hv-bob"].winrm.password_env == "BOBCO_WINRM_PASSWORD"


def test_a_part_with_dates_loads_on_the_agent_as_it_travels_in_json(tmp_path: Path) -> None:
    # A simulated host failing on given nights (the demo's durand): JSON has no dates.
    text = TWO_SITES.replace(
        "        site: acme-siege\n        winrm: {username: 'ACME\\\\svc', password_env: "
        "ACME_WINRM_PASSWORD}\n", "        site: acme-siege\n        transport: simulated\n"
        "        simulated: {faults: [{kind: unreachable, dates: [2026-11-19]}]}\n", 1)
    assert text != TWO_SITES
    loaded = load_config_text(text, "hvbackup.yaml")
    travelled = json.dumps(loaded.site_part("acme-siege"))
    again = load_config_text(travelled, str(tmp_path / "part.json"))
    faults = [f for c in again.config.clients.values() for h in c.hosts.values()
              if h.simulated for f in h.simulated.faults]
    assert [str(d) for f in faults for d in f.dates] == ["2026-11-19"]


def test_a_baies_maintenance_access_stays_on_the_server() -> None:
    sftp = ("baie-acme-2: {type: sftp, host: baie2.msp.example, user: hvb-acme, append_only: "
            "true, key_file: /etc/hvbackup/baie-key, known_hosts: /etc/hvbackup/known_hosts, "
            "path: /data, maintenance: {user: hvb-acme-maint, key_file: /etc/hvbackup/maint-key}}")
    text = TWO_SITES.replace("baie-acme-2: {type: local, path: /srv/acme-2}", sftp)
    assert text != TWO_SITES
    part = load_config_text(text, "hvbackup.yaml").site_part("acme-siege")
    assert part["baies"]["baie-acme-2"]["user"] == "hvb-acme"
    assert part["baies"]["baie-acme-2"]["append_only"] is True
    dumped = json.dumps(part)
    assert "hvb-acme-maint" not in dumped and "maint-key" not in dumped
    assert Config.model_validate(part).baies["baie-acme-2"].maintenance is None  # type: ignore[union-attr]


def test_hosts_without_a_site_belong_to_the_central_server() -> None:
    loaded = load_config_text(TWO_SITES, "hvbackup.yaml")
    assert loaded.config.clients["acme"].hosts["hv-acme-annexe"].site == "central"
    part = loaded.site_part("central")
    assert list(part["clients"]) == ["acme"]
    assert list(part["clients"]["acme"]["hosts"]) == ["hv-acme-annexe"]
    assert list(part["clients"]["acme"]["jobs"]) == ["annexe-files"]
    assert list(part["baies"]) == ["baie-central"]


def test_an_unknown_site_is_refused_with_the_known_ones() -> None:
    loaded = load_config_text(TWO_SITES, "hvbackup.yaml")
    with pytest.raises(UsageError) as caught:
        loaded.site_part("acme-siège")
    assert "did you mean 'acme-siege'?" in caught.value.message


def test_a_host_naming_an_undeclared_site_is_located(cli, tmp_path: Path) -> None:
    text = TWO_SITES.replace("site: bobco-usine", "site: bobco-usin")
    path = write_config(tmp_path, text)
    result = cli("validate", "-c", str(path))
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert (f"{path}:{line_of(text, 'site: bobco-usin')}: clients.bobco.hosts.hv-bob.site: "
            "site 'bobco-usin' is not declared under 'sites:'; did you mean 'bobco-usine'?"
            ) in result.err


def test_a_site_name_must_be_an_identifier(cli, tmp_path: Path) -> None:
    text = TWO_SITES.replace("  acme-siege:\n", "  ACME Siège:\n").replace(
        "site: acme-siege", "site: ACME Siège")
    path = write_config(tmp_path, text)
    result = cli("validate", "-c", str(path))
    assert result.code == 2, result.err
    assert (f"{path}:{line_of(text, 'ACME Siège:')}: sites.ACME Siège: 'ACME Siège' is not a "
            "valid name: use lower-case letters") in result.err


def test_the_central_site_needs_no_declaration(cli, tmp_path: Path) -> None:
    text = TWO_SITES.replace("        address: hv02.annexe-acme.local\n",
                             "        address: hv02.annexe-acme.local\n        site: central\n")
    result = cli("validate", "-c", str(write_config(tmp_path, text)))
    assert result.code == 0, result.err


def test_a_site_no_host_names_is_warned(tmp_path: Path) -> None:
    text = TWO_SITES.replace("sites:\n", "sites:\n  dupont-entrepot: {name: Dupont}\n")
    warned = "\n".join(str(w) for w in load_config(write_config(tmp_path, text)).warnings)
    assert (f"{tmp_path / 'hvbackup.yaml'}:{line_of(text, 'dupont-entrepot')}: "
            "sites.dupont-entrepot: no host names this site") in warned
    assert "acme-siege: no host" not in warned and "bobco-usine: no host" not in warned
