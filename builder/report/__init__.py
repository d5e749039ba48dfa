"""Regression results: the report's schema, the parsers that fill it from the tools' output,
the thresholds that judge it, and its Markdown and HTML renderings.

The JSON report (`schema.Report`) is the source of truth; Markdown and HTML are rendered
from it alone, so a report can be re-rendered or judged again from its JSON.
"""
