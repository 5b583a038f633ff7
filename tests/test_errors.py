"""The error tree: stable unique codes, exit codes, permanence."""

from __future__ import annotations

from orchestrator.errors import (
    BaieUnreachable,
    ConfigError,
    ConfigProblem,
    HostAuthError,
    HvbError,
    all_error_classes,
)


def test_codes_are_unique_and_stable_looking() -> None:
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes))
    assert all(code.startswith("HVB-") and code.upper() == code for code in codes)


def test_retry_stops_at_permanent_errors() -> None:
    assert BaieUnreachable("x").permanent is False
    assert HostAuthError("x").permanent is True
    assert HvbError("x", permanent=False).permanent is False


def test_config_error_lists_problems_in_file_order() -> None:
    err = ConfigError([
        ConfigProblem("a.yaml", 12, "clients.acme", "second"),
        ConfigProblem("a.yaml", 3, "msp.name", "first"),
    ])
    assert err.exit_code == 2
    assert str(err).splitlines() == [
        "2 problems in the configuration:",
        "  a.yaml:3: msp.name: first",
        "  a.yaml:12: clients.acme: second",
    ]
