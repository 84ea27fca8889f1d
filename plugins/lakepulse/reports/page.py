"""The report as HTML: the same document for the dashboard page and for the e-mail.

Only the image sources differ: files beside the page (``volume_heatmap.png``) or parts of the
e-mail (``cid:volume_heatmap.png``). Styles are inline-friendly and simple, because mail
clients ignore most of CSS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from lakepulse.analysis import QueryResult
from lakepulse.reports import KeyNumber, ReportData
from lakepulse.reports.charts import source_colours

CHART_CAPTIONS = {
    "volume_heatmap": "Volume per source and hour",
    "anomalies": "Time series, forecast band and anomalies",
    "volume_lag": "Volume and lag over time",
    "quality_pass_rate": "Data-quality pass rate",
}
TABLE_STYLE = "border-collapse:collapse;font-size:13px;margin:6px 0 18px 0"
CELL = "border:1px solid #ddd;padding:3px 8px"


def subject(data: ReportData, numbers: Sequence[KeyNumber]) -> str:
    by_label = {n.label: n for n in numbers}
    quality = by_label["Data-quality pass rate"]
    passed = f"quality {quality.display()} passed" if quality.value is not None else "no checks"
    return (
        f"Lakepulse daily report {data.day}: "
        f"{by_label['Events (curated)'].display()}, {passed}, "
        f"{by_label['Streaming job restarts'].display()} restarts"
    )


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value).replace("T", " ").replace("Z", " UTC"))


def key_numbers_table(numbers: Sequence[KeyNumber]) -> str:
    rows = "".join(
        f'<tr><td style="{CELL}">{escape(n.label)}</td>'
        f'<td style="{CELL};text-align:right;font-weight:bold" class="value" '
        f'data-label="{escape(n.label)}">{escape(n.display())}</td>'
        f'<td style="{CELL};color:#666">{escape(n.note)}</td></tr>'
        for n in numbers
    )
    return f'<table id="key-numbers" style="{TABLE_STYLE}">{rows}</table>'


def result_table(result: QueryResult, empty: str, colours: dict[str, str], limit: int = 60) -> str:
    """A query's result as a table; sources in their chart colour."""
    if result.missing:
        return f'<p style="color:#666">{escape(empty)} (no table {escape(", ".join(result.missing))} yet)</p>'  # noqa: E501
    if not result.rows:
        return f'<p style="color:#666">{escape(empty)}</p>'
    head = "".join(f'<th style="{CELL};background:#f3f3f3">{escape(c)}</th>'
                   for c in result.columns)  # fmt: skip
    body = []
    for record in result.records()[:limit]:
        cells = []
        for column, value in record.items():
            style = CELL + (";text-align:right" if isinstance(value, int | float) else "")
            if column == "source":
                style += f";color:{colours.get(str(value), '#222')};font-weight:bold"
            cells.append(f'<td style="{style}">{_cell(value)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = len(result.rows) - limit
    note = f'<p style="color:#666">… and {more} more rows</p>' if more > 0 else ""
    return (f'<table id="{escape(result.name)}" style="{TABLE_STYLE}"><tr>{head}</tr>'
            + "".join(body) + "</table>" + note)  # fmt: skip


def build_html(
    data: ReportData,
    numbers: Sequence[KeyNumber],
    image_src: Callable[[str], str],
    *,
    page_url: str | None = None,
) -> str:
    """The report document; ``image_src(name)`` says where chart ``name`` is found."""

    colours = source_colours(data)

    def chart(name: str) -> str:
        return (f'<h2 style="font-size:16px;margin:18px 0 4px 0">{CHART_CAPTIONS[name]}</h2>'
                f'<img src="{escape(image_src(name))}" alt="{CHART_CAPTIONS[name]}" '
                f'style="max-width:100%;width:1100px">')  # fmt: skip

    sections = [
        f'<h1 style="font-size:20px">Lakepulse daily report — {data.day}</h1>',
        '<p style="color:#666">All times UTC. Volume, trends and anomalies are by event time; '
        "lag and restarts by wall-clock time.</p>",
        key_numbers_table(numbers),
        chart("volume_heatmap"),
        chart("anomalies"),
        '<h2 style="font-size:16px">Top anomalies of the day</h2>',
        result_table(
            data["top_anomalies"], colours=colours, empty="No anomaly flagged by the model"
        ),
        '<h2 style="font-size:16px">Forecast vs actual per source</h2>',
        result_table(data["forecast_vs_actual"], colours=colours, empty="No forecasts"),
        chart("volume_lag"),
        '<h2 style="font-size:16px">Streaming job restarts</h2>',
        result_table(
            data["pipeline_restarts"], colours=colours, empty="No restart of the streaming job"
        ),
        chart("quality_pass_rate"),
        result_table(data["quality_pass_rate"], colours=colours, empty="No validation on this day"),
        '<h2 style="font-size:16px">Trend per source (against the week before)</h2>',
        result_table(data["trend_by_source"], colours=colours, empty="No events in the last week"),
    ]
    if page_url:
        sections.insert(2, f'<p><a href="{escape(page_url)}">This report on the dashboard</a></p>')
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>Lakepulse daily report {data.day}</title></head>"
        '<body style="font-family:Helvetica,Arial,sans-serif;color:#222;max-width:1140px">'
        + "\n".join(sections)
        + "</body></html>\n"
    )


def index_html(days: Sequence[str]) -> str:
    """The list of published reports, newest first."""
    items = "".join(
        f'<li><a href="{d}/index.html">{d}</a></li>' for d in sorted(days, reverse=True)
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Lakepulse reports</title>'
        '</head><body style="font-family:Helvetica,Arial,sans-serif">'
        f"<h1>Lakepulse daily reports</h1><ul>{items}</ul></body></html>\n"
    )
