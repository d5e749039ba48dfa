"""The report as Markdown, for a pull-request comment."""

from __future__ import annotations

from .schema import Report
from .tables import Table, all_tables, summary


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_md(table: Table) -> str:
    lines = [f"### {table.title}", "", "| " + " | ".join(_cell(h) for h in table.header) + " |",
             "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    head, *failures = summary(report)
    icon = "✅" if report.passed else "❌"
    parts = [f"## {icon} experts-first regression: {report.variant}", "", f"**{head}**"]
    if failures:
        parts += [""] + [f"- {f}" for f in failures]
    parts += [f"- {n}" for n in report.notes]
    for table in all_tables(report):
        parts += ["", table_md(table)]
    parts += ["", f"<sub>report schema {report.schema}, created {report.created}; the JSON report is the source of truth.</sub>", ""]
    return "\n".join(parts)
