"""Small self-contained SVG charts (bars and lines), so the HTML report needs no plotting library."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 30, 70
COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f")


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value`."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * step >= value:
            return m * step
    return 10 * step


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _frame(title: str, y_label: str, y_max: float, body: list[str]) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<text transform="translate(14,{TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>',
    ]
    for i in range(5):
        v = y_max * i / 4
        y = TOP + plot_h * (1 - i / 4)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    parts += body
    parts.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>')
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}" stroke="#333"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(title: str, labels: list[str], values: list[float], y_label: str,
              reference: tuple[str, float] | None = None) -> str:
    """Vertical bars, one per label; `reference` draws a dashed labelled line (e.g. a threshold)."""
    finite = [v for v in values if math.isfinite(v)] + ([reference[1]] if reference else [])
    y_max = _nice_max(max(finite, default=1.0) * 1.05)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(values), 1)
    body = []
    for i, (label, value) in enumerate(zip(labels, values)):
        x = LEFT + i * slot + slot * 0.15
        h = plot_h * max(value, 0) / y_max if math.isfinite(value) else 0
        y = TOP + plot_h - h
        body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{COLORS[0]}">'
                    f'<title>{escape(label)}: {_fmt(value)}</title></rect>')
        body.append(f'<text x="{x + slot * 0.35:.1f}" y="{y - 3:.1f}" text-anchor="middle">{_fmt(value)}</text>')
        lx, ly = x + slot * 0.35, HEIGHT - BOTTOM + 12
        body.append(f'<text x="{lx:.1f}" y="{ly}" text-anchor="end" transform="rotate(-30 {lx:.1f} {ly})">{escape(label)}</text>')
    if reference:
        y = TOP + plot_h * (1 - reference[1] / y_max)
        body.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e15759" stroke-dasharray="5,4"/>')
        body.append(f'<text x="{WIDTH - RIGHT}" y="{y - 4:.1f}" text-anchor="end" fill="#e15759">{escape(reference[0])}</text>')
    return _frame(title, y_label, y_max, body)


def line_chart(title: str, series: list[Series], x_label: str, y_label: str, y_max: float | None = None) -> str:
    """Each series as a line with point markers, over a shared numeric x axis starting at 0; the y axis
    ends at `y_max` (for bounded values, e.g. percentages) or above the largest value."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points if math.isfinite(y)]
    x_max, y_max = _nice_max(max(xs, default=1.0)), y_max or _nice_max(max(ys, default=1.0) * 1.05)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def at(x: float, y: float) -> tuple[float, float]:
        return LEFT + plot_w * x / x_max, TOP + plot_h * (1 - y / y_max)

    body = []
    for i in range(5):
        x, _ = at(x_max * i / 4, 0)
        body.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{_fmt(x_max * i / 4)}</text>')
    body.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - BOTTOM + 32}" text-anchor="middle">{escape(x_label)}</text>')
    for n, s in enumerate(series):
        color = COLORS[n % len(COLORS)]
        values = [(x, y) for x, y in sorted(s.points) if math.isfinite(y)]
        pts = [at(x, y) for x, y in values]
        if len(pts) > 1:
            body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                        + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        for (x, y), (vx, vy) in zip(pts, values):
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"><title>{escape(s.name)}: '
                        f'{_fmt(vx)} → {_fmt(vy)}</title></circle>')
        body.append(f'<rect x="{LEFT + 8 + 150 * n}" y="{HEIGHT - 22}" width="10" height="10" fill="{color}"/>')
        body.append(f'<text x="{LEFT + 22 + 150 * n}" y="{HEIGHT - 13}">{escape(s.name)}</text>')
    return _frame(title, y_label, y_max, body)
