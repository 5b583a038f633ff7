"""Retry, bandwidth limit and dry-run, each wrapped around a real LocalTarget."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.baie.local import LocalTarget
from orchestrator.baie.wrappers import DryRunTarget, LimitTarget, RetryTarget, TokenBucket
from orchestrator.errors import BaieAuthError, BaieUnreachable


class Flaky(LocalTarget):
    """A real folder that refuses the first ``failures`` writes, the way a baie does while a
    link is down."""

    def __init__(self, root: Path, failures: int, error: Exception) -> None:
        super().__init__("flaky", root)
        self.failures = failures
        self.error = error
        self.calls = 0

    def put(self, name: str, data: bytes) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        super().put(name, data)


def test_retry_recovers_from_a_link_that_comes_back(tmp_path: Path) -> None:
    sleeps: list[float] = []
    inner = Flaky(tmp_path, 3, BaieUnreachable("link down"))
    RetryTarget(inner, attempts=5, first_delay_s=2, sleep=sleeps.append).put("config", b"x")
    assert inner.get("config") == b"x"
    assert sleeps == [2, 4, 8]


def test_retry_gives_up_with_the_reason(tmp_path: Path) -> None:
    inner = Flaky(tmp_path, 99, BaieUnreachable("baie paris-1: cannot connect"))
    with pytest.raises(BaieUnreachable, match=r"cannot connect \(after 3 attempts\)"):
        RetryTarget(inner, attempts=3, sleep=lambda s: None).put("config", b"x")
    assert inner.calls == 3


def test_retry_stops_at_once_on_permanent_errors(tmp_path: Path) -> None:
    inner = Flaky(tmp_path, 99, BaieAuthError("host key CHANGED"))
    with pytest.raises(BaieAuthError):
        RetryTarget(inner, attempts=5, sleep=lambda s: None).put("config", b"x")
    assert inner.calls == 1


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_token_bucket_allows_a_burst_then_the_sustained_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=625_000, burst=12_500_000, clock=t.clock, sleep=t.sleep)
    bucket.take(12_500_000)  # 100 Mbit/s burst: one second's worth goes at once
    assert t.now == 0
    bucket.take(6_250_000)  # then 5 Mbit/s: 6.25 MB take 10 s
    assert t.now == pytest.approx(10.0)


def test_limit_target_spreads_uploads_over_time(tmp_path: Path) -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=625_000, burst=625_000, clock=t.clock, sleep=t.sleep)
    target = LimitTarget(LocalTarget("b", tmp_path), 5, 5, bucket=bucket)
    target.put("data/00/a", bytes(3_125_000))  # 25 Mbit at 5 Mbit/s
    assert t.now == pytest.approx(4.0)  # the first second's bytes were already allowed
    assert (tmp_path / "data/00/a").stat().st_size == 3_125_000
    target.put("data/00/b", [bytes(1_000_000), bytes(1_500_000)])  # a pack, in parts
    assert t.now == pytest.approx(8.0)  # all its bytes paid for, not the number of parts
    assert (tmp_path / "data/00/b").stat().st_size == 2_500_000


def test_dry_run_changes_nothing_on_the_baie(tmp_path: Path) -> None:
    real = LocalTarget("b", tmp_path)
    real.put("index/old", b"old")
    dry = DryRunTarget(real)
    dry.put("index/new", [b"n", b"ew"])
    dry.delete("index/old")
    assert [e.name for e in dry.list("index")] == ["index/new"]
    assert dry.get("index/new") == b"new"
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == ["old"]
