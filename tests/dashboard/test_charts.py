"""The client page's volume chart: its axis fits what is stored (round values just above it),
a subscribed volume far above the data does not flatten the lines onto the axis, and the chart
takes the width it is given (a phone's)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from orchestrator.dashboard.charts import HEIGHT, PAD_BOTTOM, PAD_TOP, volume_svg
from orchestrator.humanize import size

MB = 1_000_000
T0 = datetime(2026, 11, 1, 21, tzinfo=UTC)


def _chart(values: list[int], quota: int | None) -> str:
    points = [(T0 + timedelta(days=i), v) for i, v in enumerate(values)]
    return volume_svg({"site-a": points}, quota, "ACME", lambda n: size(n, "fr"))


def _axis(svg: str) -> list[str]:
    return re.findall(r'text-anchor="end" font-size="11" fill="#57606a">([^<]+)</text>', svg)[:-1]


def _ys(svg: str) -> list[float]:
    [points] = re.findall(r'class="series"[^>]*points="([^"]+)"', svg)
    return [float(p.split(",")[1]) for p in points.split()]


def test_the_axis_fits_the_data_not_a_far_quota() -> None:
    svg = _chart([3 * MB, 4 * MB, 4_200_000], quota=100_000 * MB)  # 100 Go subscribed
    assert _axis(svg) == ["0 o", "2,0 Mo", "4,0 Mo", "6,0 Mo", "8,0 Mo"]
    ys = _ys(svg)
    bottom, top = HEIGHT - PAD_BOTTOM, PAD_TOP
    assert min(ys) < top + (bottom - top) * 0.6  # the line is up in the chart, not on the axis
    assert "↑ 100\u00a0Go" in svg or "↑ 100 Go" in svg  # the quota said, off the scale
    assert 'width="100%"' in svg


def test_a_quota_near_the_data_is_drawn_on_the_scale() -> None:
    svg = _chart([60 * MB, 80 * MB], quota=100 * MB)
    assert _axis(svg) == ["0 o", "25 Mo", "50 Mo", "75 Mo", "100 Mo"]
    assert 'class="quota" x1=' in svg
