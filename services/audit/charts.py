"""Draws inline SVG bar charts for the HTML report: no script, no external asset."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

# One colour per reason, stable across reports: dispatching ones green/blue,
# consent drops warm, technical drops grey.
COLOURS: Mapping[str, str] = {
    "consented": "#2e7d32",
    "opt_out_confirmation": "#1565c0",
    "no_consent": "#c62828",
    "opted_out": "#ef6c00",
    "purpose_not_consented": "#ad1457",
    "consent_expired": "#6a1b9a",
    "purpose_not_permitted": "#8d6e63",
    "confirmation_not_allowed": "#00838f",
    "frequency_capped": "#f9a825",
    "invalid_request": "#757575",
    "count": "#455a64",
}

_W, _H = 760, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 16, 44


@dataclass(frozen=True)
class Bar:
    label: str
    parts: Mapping[str, int]  # series -> value, stacked in the legend's order


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    series: Sequence[str],
    marker: tuple[float, str] | None = None,
    every_label: int = 1,
) -> str:
    """Draws stacked bars; `marker` draws a dashed vertical line at a bar position
    (a float: 2.5 is between the 3rd and 4th bars) with its caption."""
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    top = max((sum(b.parts.values()) for b in bars), default=0) or 1
    step = plot_w / max(len(bars), 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_W - _RIGHT}" y2="{_TOP + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{_LEFT - 6}" y="{_TOP + 10}" text-anchor="end" font-size="11">{top}</text>',
        f'<text x="{_LEFT - 6}" y="{_TOP + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, bar in enumerate(bars):
        x = _LEFT + i * step
        y = float(_TOP + plot_h)
        tip = ", ".join(f"{k}: {v}" for k, v in bar.parts.items() if v)
        for name in series:
            value = bar.parts.get(name, 0)
            if not value:
                continue
            h = value / top * plot_h
            y -= h
            out.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{COLOURS.get(name, "#455a64")}">'
                f"<title>{escape(bar.label)}: {escape(tip)}</title></rect>"
            )
        if i % every_label == 0:
            out.append(
                f'<text x="{x + step / 2:.1f}" y="{_TOP + plot_h + 14}" text-anchor="middle" '
                f'font-size="10">{escape(bar.label)}</text>'
            )
    if marker is not None:
        mx = _LEFT + marker[0] * step
        out.append(
            f'<line x1="{mx:.1f}" y1="{_TOP}" x2="{mx:.1f}" y2="{_TOP + plot_h}" '
            'stroke="#c62828" stroke-dasharray="5,3" stroke-width="2"/>'
            f'<text x="{mx - 4:.1f}" y="{_TOP + 12}" font-size="11" fill="#c62828" '
            f'text-anchor="end">{escape(marker[1])}</text>'
        )
    legend, extra = _legend(series, _H - 20)
    out.append(legend)
    out.append("</svg>")
    height = _H - 20 + max(extra, 20)
    out[0] = (
        out[0]
        .replace(f"0 0 {_W} {_H}", f"0 0 {_W} {height}")
        .replace(f'height="{_H}"', f'height="{height}"')
    )
    return "".join(out)


def _legend(series: Sequence[str], top: int) -> tuple[str, int]:
    """Lays out the legend under the plot, wrapped into rows; returns it and its height."""
    if len(series) < 2:
        return "", 0
    parts, x, y = [], _LEFT, top
    for name in series:
        width = 18 + 6 * len(name)
        if x + width > _W - _RIGHT:
            x, y = _LEFT, y + 14
        parts.append(
            f'<rect x="{x}" y="{y}" width="10" height="10" fill="{COLOURS.get(name, "#455a64")}"/>'
            f'<text x="{x + 14}" y="{y + 9}" font-size="10">{escape(name)}</text>'
        )
        x += width
    return "".join(parts), y + 14 - top
