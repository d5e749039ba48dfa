"""The report as one self-contained HTML page: tables and inline SVG charts."""

from __future__ import annotations

from html import escape

from .schema import ModelResult, Report
from .svg import Series, bar_chart, line_chart
from .tables import Table, all_tables, summary

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; }
.passed { color: #2a7d2a; } .failed { color: #c0392b; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.note { color: #666; font-size: 13px; }
"""


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c.replace('**', ''))}</td>" for c in row) + "</tr>" for row in table.rows
    )
    return f"<h3>{escape(table.title)}</h3>\n<table><tr>{head}</tr>{body}</table>"


def speed_vs_budget(model: ModelResult, report: Report) -> list[str]:
    """Per test: patched tokens/s against the configuration's VRAM budget for hot experts on this model
    (0 without), one line per mode; features off is the hot line's start."""
    modes = {c.name: c.mode for c in report.configurations}
    budgets = {h.configuration: h.budget_mib for h in model.hot}
    charts = []
    for test in dict.fromkeys(s.test for s in model.speed):
        rows = [s for s in model.speed if s.test == test]
        series: dict[str, list[tuple[float, float]]] = {}
        for s in rows:
            mode = modes.get(s.configuration, "?")
            series.setdefault(f"patched, {mode}", []).append((budgets.get(s.configuration, 0), s.patched_ts))
        if "patched, hot" in series:  # the hot line starts at budget 0: features off
            series["patched, hot"] += series.get("patched, off", [])
        series[f"reference ({model.speed_reference})"] = [(0, rows[0].reference_ts)]
        charts.append(line_chart(f"{model.name}: {test} tokens/s vs expert VRAM budget",
                                 [Series(n, p) for n, p in series.items()], "VRAM budget for experts (MiB)", "tokens/s"))
    return charts


def per_layer_chart(model: ModelResult) -> list[str]:
    if not model.routing or not model.routing.distinct_per_32:
        return []
    values = model.routing.distinct_per_32
    return [bar_chart(f"{model.name}: distinct experts per 32 tokens ({model.routing.mode} routing)",
                      [f"layer {i}" for i in range(len(values))], values, "experts",
                      reference=(f"{model.n_expert} experts", float(model.n_expert)))]


def hit_rate_chart(model: ModelResult) -> list[str]:
    """Per layer: the share of the profile's selections that hot experts get, one line per hot configuration."""
    if not model.hot:
        return []
    series = [Series(f"{h.configuration} ({h.budget_mib} MiB)",
                     [(layer, 100 * rate) for layer, rate in enumerate(h.hit_rate) if rate is not None]) for h in model.hot]
    return [line_chart(f"{model.name}: hot-expert hit rate per layer (in-sample)", series, "layer", "hit rate (%)", y_max=100)]


def kld_chart(model: ModelResult, threshold: float | None) -> list[str]:
    if not model.accuracy:
        return []
    reference = (f"threshold {threshold:g}", threshold) if threshold is not None else None
    return [bar_chart(f"{model.name}: mean KLD vs upstream per configuration", [a.configuration for a in model.accuracy],
                      [a.mean_kld for a in model.accuracy], "mean KLD", reference=reference)]


def render_html(report: Report) -> str:
    head, *failures = summary(report)
    cls = "passed" if report.passed else "failed"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>experts-first regression: {escape(report.variant)}</title><style>{STYLE}</style></head><body>",
        f"<h1>experts-first regression: {escape(report.variant)}</h1>",
        f'<p class="{cls}"><strong>{escape(head)}</strong></p>',
    ]
    if failures or report.notes:
        parts.append("<ul>" + "".join(f"<li>{escape(x)}</li>" for x in failures + report.notes) + "</ul>")
    parts += [_table_html(t) for t in all_tables(report)]
    parts.append("<h2>Charts</h2>")
    for model in report.models:
        kld_limits = [c.threshold for c in report.checks if c.model == model.name and c.metric == "mean_kld"]
        charts = (speed_vs_budget(model, report) + per_layer_chart(model) + hit_rate_chart(model)
                  + kld_chart(model, max(kld_limits) if kld_limits else None))
        parts.append(f"<h3>{escape(model.name)}</h3>")
        parts.append('<div class="charts">' + "\n".join(charts) + "</div>" if charts else '<p class="note">no results to plot</p>')
    if not any(m.hot for m in report.models):
        parts.append('<p class="note">No configuration kept hot experts on these models, so there are no per-layer hit '
                     "rates to plot; the per-layer chart shows the routing's locality (distinct experts per 32 tokens), "
                     "which bounds them.</p>")
    parts.append(f'<p class="note">report schema {report.schema}, created {escape(report.created)}; '
                 "the JSON report is the source of truth.</p></body></html>")
    return "\n".join(parts) + "\n"
