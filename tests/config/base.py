"""A small valid configuration that the config tests break one rule at a time."""

from __future__ import annotations

BASE = """\
version: 1
database: sqlite:///var/h.db
msp:
  name: MSP Test
  hotline: [hotline@msp.example]
  timezone: Europe/Paris
  escrow_public_key_file: keys/escrow.pub
smtp:
  host: smtp.msp.example
  username: backups@msp.example
  password_env: HVB_SMTP_PASSWORD
  from: "Backups <backups@msp.example>"
baies:
  site-a:
    type: local
    path: /srv/baie-a
  site-b:
    type: sftp
    host: baie.msp.example
    user: hvbackup
    key_file: keys/id_ed25519
    known_hosts: keys/known_hosts
    path: /srv/baie
clients:
  acme:
    name: ACME SARL
    contacts: [it@acme.example]
    quota_gb: 500
    encryption: {public_key_file: keys/acme.pub, escrow: true}
    copies: [site-a, site-b]
    hosts:
      hv01:
        address: hv01.acme.local
        winrm: {username: 'ACME\\svc', password_env: ACME_WINRM_PASSWORD, operation_timeout_s: 20}
    jobs:
      erp:
        type: hyperv-vm
        host: hv01
        vms: [ERP01, DC01]
        schedule: "daily 22:00"
      compta:
        type: sql-server
        host: hv01
        instance: 'SQL01\\COMPTA'
        databases: [all]
        schedule: "daily 23:30"
      partages:
        type: files
        host: hv01
        paths: ['D:\\Partages']
        schedule: "weekdays 21:00"
"""


def mutate(old: str, new: str, text: str = BASE) -> str:
    """``text`` with ``old`` replaced once by ``new``; fails loudly if ``old`` is not there."""
    assert text.count(old) >= 1, f"{old!r} not in the base config"
    return text.replace(old, new, 1)


def line_of(text: str, snippet: str, occurrence: int = 1) -> int:
    """1-based line number of the ``occurrence``-th line containing ``snippet``."""
    found = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if snippet in line:
            found += 1
            if found == occurrence:
                return number
    raise AssertionError(f"{snippet!r} not found {occurrence} time(s)")
