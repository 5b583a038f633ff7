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
        ("clients.acme.quota_gb", "must be more than 0", "quota_gb:"),
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
    # Numbers a backup would crash on (int(inf), OverflowError) are refused here.
    ("infinite-quota", "quota_gb: 500", "quota_gb: .inf", [
        ("clients.acme.quota_gb", "must be a finite number (got inf)", "quota_gb:"),
    ]),
    ("nan-quota", "quota_gb: 500", "quota_gb: .nan", [
        ("clients.acme.quota_gb", "must be a finite number (got nan)", "quota_gb:"),
    ]),
    ("absurd-quota", "quota_gb: 500", "quota_gb: 1.0e+300", [
        ("clients.acme.quota_gb", "must be at most 1000000", "quota_gb:"),
    ]),
    ("zero-quota", "quota_gb: 500", "quota_gb: 0", [
        ("clients.acme.quota_gb", "must be more than 0", "quota_gb:"),
    ]),
    ("infinite-bandwidth", "    path: /srv/baie\n", "    path: /srv/baie\n    bandwidth: {sustained_mbps: .inf}\n", [
        ("baies.site-b.bandwidth.sustained_mbps", "must be a finite number", "bandwidth:"),
    ]),
    ("database-not-a-url", "database: sqlite:///var/h.db", "database: not a url", [
        ("database", "'not a url' is not a database URL (e.g. sqlite:///", "database:"),
    ]),
    ("database-unsupported", "database: sqlite:///var/h.db",
     "database: mysql://hvb:S3CRET-PW@db.msp.example/hvb", [
         ("database", "'mysql://hvb:***@db.msp.example/hvb': the history lives in SQLite or "
          "PostgreSQL", "database:"),
     ]),
    ("smtp-password-in-clear", "  username: backups@msp.example\n",
     "  security: none\n  username: backups@msp.example\n", [
         ("smtp.security", "the password of backups@msp.example would cross the network in "
          "clear", "security: none"),
     ]),
    ("vm-name-too-long", "vms: [ERP01, DC01]", "vms: [ERP01, " + "A" * 1_000_000 + "]", [
        ("clients.acme.jobs.erp.vms[1]", "must be at most 100 characters (got 1000000)", "vms:"),
    ]),
    ("database-name-too-long", "databases: [all]", f"databases: [{'D' * 129}]", [
        ("clients.acme.jobs.compta.databases[0]", "must be at most 128 characters (got 129)",
         "databases:"),
    ]),
    ("path-too-long", "paths: ['D:\\Partages']", f"paths: ['D:\\{'p' * 33000}']", [
        ("clients.acme.jobs.partages.paths[0]", "must be at most 32767 characters (got 33003)",
         "paths:"),
    ]),
    ("client-display-name-too-long", "name: ACME SARL", f"name: {'ACME ' * 100}", [
        ("clients.acme.name", "must be at most 200 characters (got 499)", "name: ACME ACME"),
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


def test_a_huge_value_is_not_echoed_whole(cli, tmp_path: Path) -> None:
    path = write_config(tmp_path, mutate("vms: [ERP01, DC01]", f"vms: [{'A' * 1_000_000}]"))
    result = cli("validate", "-c", str(path))
    assert result.code == 2
    assert len(result.err) < 2000


def test_smtp_without_encryption_is_fine_to_a_relay_on_this_machine(cli, tmp_path: Path) -> None:
    text = mutate("  host: smtp.msp.example\n", "  host: localhost\n  security: none\n  port: 25\n")
    result = cli("validate", "-c", str(write_config(tmp_path, text)))
    assert result.code == 0, result.err


def test_invalid_utf8_is_located_by_line_and_column(cli, tmp_path: Path) -> None:
    text = mutate("name: ACME SARL", "name: ACME SOCI\u00c9T\u00c9")
    raw = text.encode("utf-8").replace("SOCI\u00c9".encode(), "SOCI\u00c9".encode("latin-1"))
    path = tmp_path / "config.yaml"
    path.write_bytes(raw)
    result = cli("validate", "-c", str(path))
    assert result.code == 2
    line = line_of(text, "ACME SOCI")
    column = text.splitlines()[line - 1].index("\u00c9") + 1
    assert (f"{path}:{line}: not UTF-8 text: byte 0xc9 at column {column} is not UTF-8 "
            "(saved as Latin-1 or Windows-1252?); save the file as UTF-8") in result.err


def test_an_alias_bomb_is_refused_quickly(cli, tmp_path: Path) -> None:
    import time

    levels = ["bomb0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):  # ten to the ninth values once expanded
        refs = ", ".join([f"*l{i - 1}"] * 10)
        levels.append(f"bomb{i}: &l{i} [{refs}]")
    text = BASE + "\n".join(levels) + "\n"
    path = write_config(tmp_path, text)
    started = time.monotonic()
    result = cli("validate", "-c", str(path))
    assert time.monotonic() - started < 5
    assert result.code == 2
    assert (f"{path}:{line_of(text, 'bomb0:')}: the aliases (*name) of this file expand to more "
            "than 100000 values") in result.err


def test_a_file_of_many_megabytes_is_refused_before_it_is_parsed(cli, tmp_path: Path) -> None:
    path = write_config(tmp_path, BASE + "# " + "x" * (6 * 1024 * 1024) + "\n")
    result = cli("validate", "-c", str(path))
    assert result.code == 2
    assert f"{path}: the file holds 6.0 MB: a configuration is at most 5 MB" in result.err


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
