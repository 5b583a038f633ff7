"""The client page's volume chart as inline SVG: bytes stored per baie over time, with the
subscribed volume as a dashed line. Pure: measurements in, markup out (no script, no build)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from html import escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 180, 64, 22, 10
COLOURS = ["#1f6feb", "#8250df", "#bf8700", "#1a7f37"]


def volume_svg(usage: dict[str, list[tuple[datetime, int]]], quota: int | None,
               title: str, size: Callable[[float], str]) -> str:
    """An SVG line chart; an empty-state chart when nothing was measured yet. ``size`` writes
    an axis value in the reader's units (Go / GB)."""
    series = {b: pts for b, pts in usage.items() if pts}
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" style="max-width:{WIDTH}px">'
            f"<title>{escape(title)}</title>")
    if not series:
        return head + (f'<text x="{WIDTH // 2}" y="{HEIGHT // 2}" text-anchor="middle" '
                       'fill="#57606a">—</text></svg>')
    times = [t for pts in series.values() for t, _ in pts]
    t0, t1 = min(times), max(times)
    span = max((t1 - t0).total_seconds(), 1.0)
    highest = max(v for pts in series.values() for _, v in pts)
    # The axis fits the data: the subscribed volume widens it only when it is near (a quota a
    # hundred times the data would flatten every line onto the axis); otherwise it is said in
    # a corner, off the scale.
    on_scale = bool(quota) and quota is not None and quota <= 2 * max(highest, 1)
    step = nice_step(max(highest, quota or 0) if on_scale else highest)
    top = step * 4
    plot_w, plot_h = WIDTH - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP

    def x(t: datetime) -> float:
        return PAD_LEFT + plot_w * (t - t0).total_seconds() / span

    def y(v: float) -> float:
        return PAD_TOP + plot_h * (1 - v / top)

    parts = [head]
    for value in (step * i for i in range(5)):
        parts.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - 8}" y1="{y(value):.1f}" '
                     f'y2="{y(value):.1f}" stroke="#d0d7de" stroke-width="1"/>'
                     f'<text x="{PAD_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="#57606a">{escape(size(value))}</text>')
    if quota and not on_scale:
        parts.append(f'<text class="quota" x="{WIDTH - 8}" y="{PAD_TOP + 10}" '
                     f'text-anchor="end" font-size="11" fill="#cf222e">↑ '
                     f'{escape(size(quota))}</text>')
    elif quota:
        parts.append(f'<line class="quota" x1="{PAD_LEFT}" x2="{WIDTH - 8}" y1="{y(quota):.1f}" '
                     f'y2="{y(quota):.1f}" stroke="#cf222e" stroke-dasharray="6 4"/>')
    for i, (baie, pts) in enumerate(sorted(series.items())):
        colour = COLOURS[i % len(COLOURS)]
        line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        parts.append(f'<polyline class="series" data-baie="{escape(baie)}" fill="none" '
                     f'stroke="{colour}" stroke-width="2" points="{line}"/>'
                     f'<text x="{PAD_LEFT + 8 + 120 * i}" y="{HEIGHT - 6}" font-size="11" '
                     f'fill="{colour}">■ {escape(baie)}</text>')
    parts.append(f'<text x="{WIDTH - 8}" y="{HEIGHT - 6}" text-anchor="end" font-size="11" '
                 f'fill="#57606a">{t0:%d/%m} – {t1:%d/%m}</text></svg>')
    return "".join(parts)


def nice_step(highest: float) -> float:
    """The step of a four-step axis whose top is the first round value (1, 2, 2.5 or 5 times
    a power of ten) at or above ``highest``."""
    if highest <= 0:
        return 1.0
    raw = highest / 4
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
