"""Two clients at two sites with an agent each, and a host of ACME reached from the central
server; used by the tests of sites, of the agent API and of the agent itself."""

from __future__ import annotations

from pathlib import Path

TWO_SITES = """\
version: 1
database: postgresql+psycopg://hvbackup@db.msp.example/hvbackup
msp:
  name: MSP Test
  hotline: [hotline@msp.example]
  heartbeat_url: https://hc.example/ping/5b3a0c2e-secret-uuid
smtp:
  host: smtp.msp.example
  username: backups@msp.example
  password_env: HVB_SMTP_PASSWORD
  from: "Backups <backups@msp.example>"
sites:
  acme-siege:
    name: ACME, siège de Lyon
    heartbeat_minutes: 30
  bobco-usine:
    name: BobCo, usine
baies:
  baie-acme-1: {type: local, path: /srv/acme-1}
  baie-acme-2: {type: local, path: /srv/acme-2}
  baie-bob: {type: local, path: /srv/bob}
  baie-central: {type: local, path: /srv/central}
clients:
  acme:
    name: ACME SARL
    contacts: [it@acme.example]
    encryption: {public_key_file: keys/acme.pub}
    copies: [baie-acme-1, baie-acme-2]
    hosts:
      hv-acme:
        address: hv01.acme.local
        site: acme-siege
        winrm: {username: 'ACME\\\\svc', password_env: ACME_WINRM_PASSWORD}
      hv-acme-annexe:
        address: hv02.annexe-acme.local
        winrm: {username: 'ACME\\\\svc', password_file: /etc/hvbackup/annexe.pass}
    jobs:
      erp-acme:
        type: hyperv-vm
        host: hv-acme
        vms: [ERP01]
        schedule: "daily 22:00"
      annexe-files:
        type: files
        host: hv-acme-annexe
        paths: ['D:\\\\Annexe']
        schedule: "daily 23:00"
        copies: [baie-central]
  bobco:
    name: BobCo Industries
    contacts: [dsi@bobco.example]
    encryption: {public_key_file: keys/bobco.pub}
    copies: [baie-bob]
    hosts:
      hv-bob:
        address: srv-hyperv.bobco.lan
        site: bobco-usine
        winrm: {username: 'BOBCO\\\\backup', password_env: BOBCO_WINRM_PASSWORD}
    jobs:
      usine-compta:
        type: sql-server
        host: hv-bob
        instance: 'SRV-HYPERV\\\\COMPTA'
        databases: [all]
        schedule: "daily 21:00"
"""

# What would betray BobCo's site in anything given to ACME's agent.
BOBCO_TRACES = ["bobco", "BobCo", "hv-bob", "srv-hyperv.bobco.lan", "usine-compta",
                "BOBCO_WINRM_PASSWORD", "baie-bob", "dsi@bobco.example", "/srv/bob"]


def write_two_sites(folder: Path) -> Path:
    """The configuration in ``folder``, its history a SQLite file beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hvbackup.yaml"
    text = TWO_SITES.replace("postgresql+psycopg://hvbackup@db.msp.example/hvbackup",
                             f"sqlite:///{folder / 'history.db'}")
    path.write_text(text + f"state_dir: {folder / 'state'}\n", encoding="utf-8")
    return path
