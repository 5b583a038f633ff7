"""Each rule of the configuration, broken on purpose: `hvbackup validate` must exit 2 and say
`FILE:LINE: key.path: what is wrong`, with no traceback and without echoing secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.base import BASE, line_of, mutate
from tests.conftest import write_config

# (id, old, new, [(key path, message fragment, snippet locating the line)])
CASES = [
    ("misspelt-key", 'schedule: "daily 22:00"', 'shedule: "daily 22:00"', [
        ("clients.acme.jobs.erp.shedule", "unknown key 'shedule'; did you mean 'schedule'?",
         "shedule:"),
        ("clients.acme.jobs.erp.schedule", "missing required key 'schedule'", "erp:"),
    ]),
    # docs/lab/shares.md: the JEA account cannot read a VM's own folder; export mode is required.
    ("checkpoint-mode-through-jea", "operation_timeout_s: 20}",
     "operation_timeout_s: 20, configuration_name: hvbackup}", [
         ("clients.acme.jobs.erp", "set 'mode: export'", "erp:"),
     ]),
    ("explicit-checkpoint-mode-through-jea",
     "operation_timeout_s: 20}\n    jobs:\n      erp:\n        type: hyperv-vm\n",
     "operation_timeout_s: 20, configuration_name: hvbackup}\n    jobs:\n      erp:\n"
     "        type: hyperv-vm\n        mode: checkpoint\n", [
         ("clients.acme.jobs.erp.mode", "cannot read the VM's own folder", "mode: checkpoint"),
     ]),
    ("misspelt-top-level-key", "baies:", "baie:", [
        ("baie", "unknown key 'baie'; did you mean 'baies'?", "baie:"),
    ]),
    ("unknown-key-no-close-match", "    quota_gb: 500", "    quota_gb: 500\n    colour: blue", [
        ("clients.acme.colour", "unknown key 'colour' (allowed here: ", "colour:"),
    ]),
    ("duplicate-key", "        host: hv01\n        vms:", "        host: hv01\n        host: hv02\n        vms:", [
        ("clients.acme.jobs.erp.host", "duplicate key (first written on line ", "host: hv02"),
        ("clients.acme.jobs.erp.host", "host 'hv02' is not defined in client 'acme'; did you mean 'hv01'?",
         "host: hv02"),
    ]),
    ("duplicate-job", "      partages:", "      erp:  # again", [
        ("clients.acme.jobs.erp", "duplicate key (first written on line 36)", "# again"),
    ]),
    ("wrong-type-number", "quota_gb: 500", "quota_gb: lots", [
        ("clients.acme.quota_gb", "expected a number, got text ('lots')", "quota_gb:"),
    ]),
    ("negative-quota", "quota_gb: 500", "quota_gb: -5", [
        ("clients.acme.quota_gb", "must be at least 0", "quota_gb:"),
    ]),
    ("wrong-type-list", "contacts: [it@acme.example]", "contacts: it@acme.example", [
        ("clients.acme.contacts", "expected a list, got text", "contacts:"),
    ]),
    ("bad-schedule-string", '"daily 22:00"', '"every day 22:00"', [
        ("clients.acme.jobs.erp.schedule", 'expected "daily HH:MM", "weekdays HH:MM"', "every day"),
    ]),
    ("bad-schedule-time", '"daily 22:00"', '"daily 25:00"', [
        ("clients.acme.jobs.erp.schedule", "time '25:00' does not exist", "25:00"),
    ]),
    ("bad-schedule-day", '"daily 22:00"', '"mon,wed,fry 22:00"', [
        ("clients.acme.jobs.erp.schedule", "unknown day 'fry'", "fry"),
    ]),
    ("empty-vm-list", "vms: [ERP01, DC01]", "vms: []", [
        ("clients.acme.jobs.erp.vms", "must not be empty", "vms:"),
    ]),
    ("empty-path-list", "paths: ['D:\\Partages']", "paths: []", [
        ("clients.acme.jobs.partages.paths", "must not be empty", "paths:"),
    ]),
    ("vm-listed-twice", "vms: [ERP01, DC01]", "vms: [ERP01, erp01]", [
        ("clients.acme.jobs.erp.vms", "'erp01' is listed twice", "vms:"),
    ]),
    ("unknown-host", "host: hv01\n        instance", "host: hv1\n        instance", [
        ("clients.acme.jobs.compta.host", "host 'hv1' is not defined in client 'acme'; did you mean 'hv01'?",
         "host: hv1"),
    ]),
    ("copy-names-no-baie", "copies: [site-a, site-b]", "copies: [site-a, site-c]", [
        ("clients.acme.copies[1]", "copy 'site-c' names no baie; did you mean", "copies:"),
    ]),
    ("copy-names-no-baie-no-close-match", "copies: [site-a, site-b]", "copies: [site-a, nas]", [
        ("clients.acme.copies[1]", "copy 'nas' names no baie (defined: site-a, site-b)", "copies:"),
    ]),
    ("winrm-without-credentials", ", password_env: ACME_WINRM_PASSWORD", "", [
        ("clients.acme.hosts.hv01.winrm", "no credentials: set password_env", "winrm:"),
    ]),
    ("winrm-without-block", "        winrm: {username: 'ACME\\svc', password_env: ACME_WINRM_PASSWORD, operation_timeout_s: 20}\n", "", [
        ("clients.acme.hosts.hv01", "a winrm host needs a 'winrm:' block", "hv01:"),
    ]),
    ("client-without-key", "    encryption: {public_key_file: keys/acme.pub, escrow: true}\n", "", [
        ("clients.acme.encryption", "a client with jobs needs 'encryption: {public_key_file: ...}'",
         "acme:"),
    ]),
    ("escrow-without-msp-key", "  escrow_public_key_file: keys/escrow.pub\n", "", [
        ("clients.acme.encryption.escrow", "msp.escrow_public_key_file is not set", "encryption:"),
    ]),
    ("clear-password", "  password_env: HVB_SMTP_PASSWORD", "  password: hunter2-SECRET", [
        ("smtp.password", "a secret must not be written in the configuration", "password:"),
        ("smtp", "username is set but no password_env or password_file", "smtp:"),
    ]),
    ("clear-passphrase", "escrow: true}", "escrow: true, passphrase: hunter2-SECRET}", [
        ("clients.acme.encryption.passphrase", "'password_env: VARIABLE_NAME'", "passphrase"),
    ]),
    ("yaml-syntax-error", "vms: [ERP01, DC01]", "vms: [ERP01, DC01", [
        ("", "YAML syntax error, column ", "schedule: \"daily 22:00\""),
    ]),
    ("unknown-job-type", "type: hyperv-vm", "type: hyperv", [
        ("clients.acme.jobs.erp.type",
         "unknown type 'hyperv': expected one of 'hyperv-vm', 'sql-server', 'files'", "hyperv"),
    ]),
    ("unknown-language", "    quota_gb: 500", "    quota_gb: 500\n    language: de", [
        ("clients.acme.language", "'de' is not allowed: expected 'fr' or 'en'", "language:"),
    ]),
    ("bad-email", "contacts: [it@acme.example]", "contacts: [it-at-acme]", [
        ("clients.acme.contacts[0]", "'it-at-acme' is not an e-mail address", "contacts:"),
    ]),
    ("bad-timezone", "timezone: Europe/Paris", "timezone: Europe/Pariss", [
        ("msp.timezone", "unknown timezone 'Europe/Pariss'", "timezone:"),
    ]),
    ("wrong-version", "version: 1", "version: 2", [
        ("version", "2 is not allowed: expected 1", "version:"),
    ]),
    ("winrm-timeouts", "operation_timeout_s: 20}", "operation_timeout_s: 60}", [
        ("clients.acme.hosts.hv01.winrm", "operation_timeout_s (60) must be below read_timeout_s (30)",
         "winrm:"),
    ]),
    ("vm-job-on-local-host", "        address: hv01.acme.local\n", "        address: hv01.acme.local\n        transport: local\n", [
        ("clients.acme.jobs.erp.type", "a hyperv-vm job needs a Windows host with Hyper-V", "type: hyperv-vm"),
        ("clients.acme.hosts.hv01.winrm", "a 'winrm:' block on a 'local' host would be ignored", "winrm:"),
    ]),
    ("two-baies-same-place", "    path: /srv/baie-a", "    path: /srv/baie-a\n  site-c:\n    type: local\n    path: /srv/baie-a/", [
        ("baies.site-c.path", "same place as baie 'site-a'", "/srv/baie-a/"),
    ]),
    ("all-with-names", "databases: [all]", "databases: [all, COMPTA]", [
        ("clients.acme.jobs.compta.databases", "'all' already means every database", "databases:"),
    ]),
    ("bad-client-name", "  acme:", "  ACME Corp:", [
        ("clients.ACME Corp", "'ACME Corp' is not a valid name", "ACME Corp:"),
    ]),
    ("missing-required-key", "  name: MSP Test\n", "", [
        ("msp.name", "missing required key 'name'", "msp:"),
    ]),
    ("chunk-size-not-power-of-two", "vms: [ERP01, DC01]", "vms: [ERP01, DC01]\n        image_chunk_kib: 768", [
        ("clients.acme.jobs.erp.image_chunk_kib", "768 is not a power of two", "image_chunk_kib"),
    ]),
    ("zero-window", '"daily 22:00"', '"daily 22:00"\n        window_hours: 0', [
        ("clients.acme.jobs.erp.window_hours", "must be more than 0", "window_hours"),
    ]),
    ("job-without-copies", "    copies: [site-a, site-b]\n", "", [
        ("clients.acme.jobs.erp", "no copies: set 'copies: [baie, ...]'", "erp:"),
        ("clients.acme.jobs.partages", "no copies", "partages:"),
    ]),
    ("burst-below-sustained", "    path: /srv/baie\n", "    path: /srv/baie\n    bandwidth: {sustained_mbps: 10, burst_mbps: 5}\n", [
        ("baies.site-b.bandwidth", "burst_mbps must be at least sustained_mbps", "bandwidth:"),
    ]),
    ("same-vm-in-two-jobs", "      partages:", "      erp-again:\n        type: hyperv-vm\n"
     "        host: hv01\n        vms: [erp01]  # the same VM: Hyper-V ignores case\n"
     "        schedule: \"daily 23:00\"\n      partages:", [
        ("clients.acme.jobs.erp-again.vms[0]", "VM 'erp01' of host 'hv01' is already backed up "
         "by job 'erp'", "# the same VM"),
    ]),
    ("retention-keeps-nothing", '"daily 22:00"', '"daily 22:00"\n        retention: {}', [
        ("clients.acme.jobs.erp.retention", "keeps nothing", "retention:"),
    ]),
    # Tiers (quota.on_overrun: next_tier): increasing, and the client's volume one of them.
    ("tiers-not-increasing", "  timezone: Europe/Paris", "  timezone: Europe/Paris\n"
     "  volume_tiers_gb: [100, 500, 250]", [
         ("msp.volume_tiers_gb", "tiers must increase: 250 comes after 500", "volume_tiers_gb"),
     ]),
    ("tier-not-a-number", "  timezone: Europe/Paris", "  timezone: Europe/Paris\n"
     "  volume_tiers_gb: [100, lots]", [
         ("msp.volume_tiers_gb[1]", "expected a number", "volume_tiers_gb"),
     ]),
    ("next-tier-without-tiers", "    quota_gb: 500", "    quota_gb: 500\n"
     "    quota: {on_overrun: next_tier}", [
         ("clients.acme.quota.on_overrun", "msp.volume_tiers_gb lists no tiers", "on_overrun"),
     ]),
    ("next-tier-volume-not-a-tier", "  timezone: Europe/Paris", "  timezone: Europe/Paris\n"
     "  volume_tiers_gb: [100, 250, 1000]\n  quota: {on_overrun: next_tier}", [
         ("clients.acme.quota_gb", "quota_gb 500 is not one of the MSP's tiers (100, 250, 1000)",
          "quota_gb: 500"),
     ]),
    ("unknown-overrun", "    quota_gb: 500", "    quota_gb: 500\n    quota: {on_overrun: bill}", [
         ("clients.acme.quota.on_overrun", "block", "on_overrun"),
     ]),
]


@pytest.mark.parametrize(("old", "new", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_config_is_refused_with_located_messages(
    cli, tmp_path: Path, old: str, new: str, expected: list[tuple[str, str, str]]
) -> None:
    text = mutate(old, new)
    path = write_config(tmp_path, text)
    result = cli("validate", "-c", str(path))
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert result.out == ""
    for key_path, fragment, snippet in expected:
        line = line_of(text, snippet)
        where = f"{path}:{line}: {key_path}: " if key_path else f"{path}:{line}: "
        matching = [ln for ln in result.err.splitlines() if where in ln]
        assert matching, f"no message at {where!r} in:\n{result.err}"
        assert any(fragment in ln for ln in matching), f"{fragment!r} not in {matching}"
    assert "SECRET" not in result.err + result.out


def test_every_problem_is_reported_at_once(cli, tmp_path: Path) -> None:
    text = mutate("quota_gb: 500", "quota_gb: -1")
    text = mutate("vms: [ERP01, DC01]", "vms: []", text)
    text = mutate("copies: [site-a, site-b]", "copies: [site-a, site-z]", text)
    text = mutate('"weekdays 21:00"', '"weekdays 21h00"', text)
    path = write_config(tmp_path, text)
    result = cli("validate", "-c", str(path))
    assert result.code == 2
    assert "4 problems in the configuration:" in result.err
    lines = [ln.strip() for ln in result.err.splitlines()[1:]]
    # In file order, each located.
    assert [ln.split(": ", 2)[1] for ln in lines] == [
        "clients.acme.quota_gb", "clients.acme.copies[1]", "clients.acme.jobs.erp.vms",
        "clients.acme.jobs.partages.schedule",
    ]


def test_yaml_syntax_error_gives_line_and_column(cli, tmp_path: Path) -> None:
    text = mutate("    type: local\n", "    type: local\n   path: /oops\n")
    path = write_config(tmp_path, text)
    result = cli("validate", "-c", str(path))
    assert result.code == 2
    line = line_of(text, "path: /oops")
    assert f"{path}:{line}: YAML syntax error, column 4:" in result.err


def test_tab_indentation_is_a_syntax_error(cli, tmp_path: Path) -> None:
    text = mutate("    path: /srv/baie-a", "\tpath: /srv/baie-a")
    path = write_config(tmp_path, text)
    result = cli("validate", "-c", str(path))
    assert result.code == 2
    assert f"{path}:{line_of(text, 'path: /srv/baie-a')}: YAML syntax error" in result.err


@pytest.mark.parametrize(("content", "message"), [
    ("", "the file is empty"),
    ("- a\n- b\n", "the file must be a mapping of keys"),
])
def test_file_of_the_wrong_shape(cli, tmp_path: Path, content: str, message: str) -> None:
    path = write_config(tmp_path, content)
    result = cli("validate", "-c", str(path))
    assert result.code == 2
    assert f"{path}:1: {message}" in result.err


def test_missing_file(cli, tmp_path: Path) -> None:
    result = cli("validate", "-c", str(tmp_path / "nope.yaml"))
    assert result.code == 2
    assert f"{tmp_path / 'nope.yaml'}: file not found" in result.err


def test_base_config_is_valid(cli, tmp_path: Path) -> None:
    """The cases above break a config that is itself valid."""
    result = cli("validate", "-c", str(write_config(tmp_path, BASE)))
    assert result.code == 0, result.err
    assert "valid — 1 clients, 1 hosts, 3 jobs, 2 baies" in result.out


def test_keys_that_yaml_reads_as_booleans_are_explained(cli, tmp_path: Path) -> None:
    text = mutate("    quota_gb: 500", "    quota_gb: 500\n    on: true")
    path = write_config(tmp_path, text)
    result = cli("validate", "-c", str(path))
    assert result.code == 2
    line = line_of(text, "on: true")
    assert (f"{path}:{line}: clients.acme.on: YAML reads the key 'on' as a bool, not as a name"
            in result.err)
