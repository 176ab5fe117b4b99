"""The demo's static report: one self-contained HTML file (inline CSS and SVG, no scripts, nothing
fetched), for people who would rather look than read."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from parity.demo.sampler import Sample

_COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04")
_W, _H, _PAD_L, _PAD_B, _PAD_T, _PAD_R = 760, 220, 56, 28, 12, 12

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:900px;color:#111}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f4f6}td.l,th.l{text-align:left}
.ok{color:#15803d;font-weight:600}.bad{color:#b91c1c;font-weight:600}.note{color:#555}
svg{background:#fafafa;border:1px solid #e5e7eb}.legend span{margin-right:1em}
"""


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.2g}" if abs(v) < 10 else f"{v:.1f}"
    return f"{v:.2g}"


def svg_chart(title: str, series: dict[str, list[tuple[float, float]]], unit: str = "",
              bands: Sequence[tuple[float, float, str]] = (), x_max: float | None = None) -> str:
    """A line chart as inline SVG: one polyline per series over a shared time axis (seconds)."""
    points = [p for s in series.values() for p in s]
    if not points:
        return f"<p class='note'>{_esc(title)}: no data.</p>"
    x_max = max(x_max or 0.0, max(x for x, _ in points), 1.0)
    y_max = max(max(y for _, y in points), 0.0)
    y_max = y_max * 1.1 if y_max > 0 else 1.0
    pw, ph = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def sx(x: float) -> float:
        return _PAD_L + x / x_max * pw

    def sy(y: float) -> float:
        return _PAD_T + ph - y / y_max * ph

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' role='img' "
             f"aria-label='{_esc(title)}'>"]
    for start, end, label in bands:
        x0, x1 = sx(min(start, x_max)), sx(min(end, x_max))
        parts.append(f"<rect x='{x0:.1f}' y='{_PAD_T}' width='{max(0.0, x1 - x0):.1f}' height='{ph}' "
                     f"fill='#e0e7ff' opacity='.5'><title>{_esc(label)}</title></rect>")
        parts.append(f"<text x='{x0 + 3:.1f}' y='{_PAD_T + 11}' font-size='10' fill='#4338ca'>{_esc(label)}</text>")
    for i in range(5):
        y = y_max * i / 4
        parts.append(f"<line x1='{_PAD_L}' x2='{_W - _PAD_R}' y1='{sy(y):.1f}' y2='{sy(y):.1f}' stroke='#e5e7eb'/>")
        parts.append(f"<text x='{_PAD_L - 4}' y='{sy(y) + 4:.1f}' font-size='10' text-anchor='end'>"
                     f"{_esc(_fmt(y))}{_esc(unit)}</text>")
    for i in range(6):
        x = x_max * i / 5
        parts.append(f"<text x='{sx(x):.1f}' y='{_H - 8}' font-size='10' text-anchor='middle'>{x:.0f}s</text>")
    for (name, pts), color in zip(series.items(), _COLORS * 4, strict=False):
        if not pts:
            continue
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.8' points='{coords}'>"
                     f"<title>{_esc(name)}</title></polyline>")
    parts.append("</svg>")
    legend = "".join(f"<span style='color:{c}'>&#9632; {_esc(n)}</span>"
                     for n, c in zip(series, _COLORS * 4, strict=False))
    return f"<h3>{_esc(title)}</h3><div class='legend'>{legend}</div>{''.join(parts)}"


def _phase_bands(samples: Sequence[Sample]) -> list[tuple[float, float, str]]:
    bands: list[tuple[float, float, str]] = []
    for s in samples:
        if bands and bands[-1][2] == s.phase:
            bands[-1] = (bands[-1][0], s.t, s.phase)
        else:
            bands.append((s.t, s.t, s.phase))
    return [b for b in bands if b[2] in ("backfill", "workload", "reconcile")]


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    head = "".join(f"<th class='{'l' if i < left else ''}'>{_esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td class='{'l' if i < left else ''}'>{_esc(v)}</td>" for i, v in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render(result: dict[str, Any], samples: Sequence[Sample]) -> str:
    """The report for a finished run: `result` is the demo's JSON summary."""
    exact = result.get("exact")
    verdict = ("<span class='ok'>exact: every injected drift found, with the right kind, and nothing else</span>"
               if exact else "<span class='bad'>not exact: see missed and false positives below</span>")
    settings = result.get("settings", {})
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>parity demo report</title>"
           f"<style>{_CSS}</style></head><body><h1>parity demo</h1><p>{verdict}</p>"]
    out.append("<p class='note'>" + _esc(", ".join(f"{k}={v}" for k, v in settings.items())) + "</p>")
    if result.get("reconcile", {}).get("status") != "ok":
        out.append(f"<p class='bad'>reconcile: {_esc(result.get('reconcile', {}).get('status'))}</p>")
    rows = []
    for table, kinds in result.get("tables", {}).items():
        for kind, c in kinds.items():
            rows.append([table, kind, c["injected"], c["detected"], c["missed"], c["false_positives"]])
    out.append("<h2>Injected vs detected, per table and kind</h2>")
    out.append(_table(["table", "kind", "injected", "detected", "missed", "false positives"], rows, left=2)
               if rows else "<p class='note'>No drift injected and none reported.</p>")
    lat = result.get("detection_latency", {})
    if lat:
        out.append("<h2>Time from injection to detection</h2>")
        out.append(_table(["detector", "drifts", "p50 (s)", "p99 (s)"],
                          [[n, v["count"], v["p50_s"], v["p99_s"]] for n, v in lat.items()]))
    for title, key in (("Missed", "missed_keys"), ("False positives", "false_positive_keys")):
        items = result.get(key) or []
        if items:
            out.append(f"<h2>{title}</h2>")
            out.append(_table(list(items[0]), [list(i.values()) for i in items], left=len(items[0])))
    bands = _phase_bands(samples)
    end = samples[-1].t if samples else None
    tables = sorted({t for s in samples for t in s.drift_ratio})
    verify = [t for t in tables if t in result.get("verify_tables", tables)]
    out.append("<h2>Over the run</h2><p class='note'>Sampled every second from the daemon's metrics. "
               "Time is seconds since the daemon started. The drift ratio is confirmed drift over final "
               "verdicts in the daemon's rolling window.</p>")
    out.append(svg_chart("Drift ratio (streaming verifier)",
                         {t: [(s.t, s.drift_ratio.get(t, 0.0) * 100) for s in samples] for t in verify},
                         unit="%", bands=bands, x_max=end))
    out.append(svg_chart("Confirmed drift (streaming verifier, cumulative)",
                         {t: [(s.t, s.drift_total.get(t, 0.0)) for s in samples] for t in verify},
                         bands=bands, x_max=end))
    out.append(svg_chart("CDC lag: source commit to consumed (mean per second)",
                         {"CDC lag": [(s.t, s.cdc_lag_s) for s in samples if s.cdc_lag_s is not None]},
                         unit="s", bands=bands, x_max=end))
    out.append(svg_chart("Events per second and Kafka consumer lag",
                         {"events/s": [(s.t, s.events_per_s) for s in samples],
                          "consumer lag (messages)": [(s.t, s.consumer_lag) for s in samples]}, bands=bands,
                         x_max=end))
    out.append(svg_chart("Pending rechecks",
                         {t: [(s.t, s.pending_rechecks.get(t, 0.0)) for s in samples] for t in verify},
                         bands=bands, x_max=end))
    out.append("</body></html>\n")
    return "".join(out)
