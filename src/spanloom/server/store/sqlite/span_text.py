"""SQL for a turn's texts: a trace's input and output, read from the spans that hold them."""

from __future__ import annotations


# A trace's input/output text (for a query over `traces t`): read from the span it came from,
# by primary key, rather than stored a second time on the trace.
def span_text(column: str, span_id: str) -> str:
    """SQL for a span's `column` text (input or output) whose trace is `t` and id `span_id`, also
    when the span shares that text with another span of its trace (`{column}_from`, one step).
    `column` and `span_id` are fixed names from this package."""
    return (
        f"(SELECT COALESCE(sp.{column}, (SELECT h.{column} FROM spans h WHERE h.trace_id = sp.trace_id"
        f" AND h.span_id = sp.{column}_from)) FROM spans sp WHERE sp.trace_id = t.trace_id"
        f" AND sp.span_id = {span_id})"
    )


TRACE_INPUT = span_text("input", "t.input_span_id")
TRACE_OUTPUT = span_text("output", "t.output_span_id")
