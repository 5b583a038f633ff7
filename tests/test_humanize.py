"""Sizes and delays as the reports, the dashboard and the CLI write them, in both languages."""

from __future__ import annotations

import pytest

from orchestrator.humanize import age, duration, size

KB, MB, GB, TB = 1000, 1000**2, 1000**3, 1000**4


@pytest.mark.parametrize(("n", "fr", "en"), [
    (0, "0 o", "0 B"),
    (999, "999 o", "999 B"),
    (1000, "1,0 Ko", "1.0 KB"),
    (1500, "1,5 Ko", "1.5 KB"),
    (9.96 * KB, "10,0 Ko", "10.0 KB"),  # the decimal goes with the value before rounding
    (12_345, "12 Ko", "12 KB"),
    (1.2 * GB, "1,2 Go", "1.2 GB"),
    (41.4 * GB, "41 Go", "41 GB"),
    (107 * GB, "107 Go", "107 GB"),
    (999.6 * GB, "1000 Go", "1000 GB"),
    (2.5 * TB, "2,5 To", "2.5 TB"),
    (4200 * TB, "4200 To", "4200 TB"),  # terabytes at most
])
def test_size_in_a_report_or_a_page(n: float, fr: str, en: str) -> None:
    assert (size(n, "fr"), size(n, "en")) == (fr, en)


@pytest.mark.parametrize(("n", "fr", "en"), [
    (512, "512 o", "512 B"),
    (12_345_678_900, "12,3 Go", "12.3 GB"),
    (123_400_000, "123,4 Mo", "123.4 MB"),
    (3 * KB, "3,0 Ko", "3.0 KB"),
    (-5000, "-5,0 Ko", "-5.0 KB"),
])
def test_size_with_fixed_decimals_as_the_cli_prints_it(n: float, fr: str, en: str) -> None:
    assert (size(n, "fr", decimals=1), size(n, "en", decimals=1)) == (fr, en)


def test_the_cli_human_bytes_is_the_same_formatter() -> None:
    from orchestrator.cli.interactive import human_bytes

    assert human_bytes(12_345_678_900) == "12.3 GB" and human_bytes(999) == "999 B"


@pytest.mark.parametrize(("seconds", "fr", "en"), [
    (0, "0 s", "0 s"),
    (0.04, "0,1 s", "0.1 s"),  # a run of seconds is told in seconds, never "1 min"
    (0.1, "0,1 s", "0.1 s"),
    (8.44, "8,4 s", "8.4 s"),
    (42, "42 s", "42 s"),
    (89, "1 min", "1 min"),
    (91, "2 min", "2 min"),
    (54 * 60, "54 min", "54 min"),
    (119 * 60 + 29, "119 min", "119 min"),
    (2 * 3600, "2 h 00", "2 h 00"),
    (3 * 3600 + 5 * 60, "3 h 05", "3 h 05"),
    (26 * 3600, "26 h 00", "26 h 00"),
])
def test_duration_is_true_to_the_run(seconds: float, fr: str, en: str) -> None:
    assert (duration(seconds, "fr"), duration(seconds, "en")) == (fr, en)


@pytest.mark.parametrize(("seconds", "fr", "en"), [
    (0, "0 h 00 min", "0 h 00 min"),
    (5 * 3600 + 10 * 60 + 59, "5 h 10 min", "5 h 10 min"),
    (24 * 3600, "24 h 00 min", "24 h 00 min"),
    (47 * 3600 + 59 * 60, "47 h 59 min", "47 h 59 min"),
    (48 * 3600, "2 j 0 h", "2 d 0 h"),
    (3 * 86400 + 4 * 3600 + 1800, "3 j 4 h", "3 d 4 h"),
])
def test_age_counts_days_from_two_days_on(seconds: float, fr: str, en: str) -> None:
    assert (age(seconds, "fr"), age(seconds, "en")) == (fr, en)
