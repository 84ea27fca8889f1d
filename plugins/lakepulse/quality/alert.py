"""The alert e-mail for failed partitions: what failed, why, a few rows, where to look next."""

from __future__ import annotations

import html
from collections.abc import Sequence

from lakepulse.quality.verdicts import Verdict


def alert_subject(failed: Sequence[Verdict]) -> str:
    names = ", ".join(v.partition for v in failed[:3]) + (" …" if len(failed) > 3 else "")
    return f"[Lakepulse] data quality: {len(failed)} partition(s) failed and quarantined: {names}"


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f'<table border="1" cellpadding="3" cellspacing="0"><tr>{head}</tr>{body}</table>'


def alert_html(failed: Sequence[Verdict], data_docs_url: str) -> str:
    """One section per failed partition: its failed expectations, each with sample rows."""
    parts = [
        "<h2>Partitions that failed validation</h2>",
        "<p>Each was moved out of its table (the raw zone's are marked only) and is skipped by "
        "training and reports. Fix the cause, move the partition back and re-run "
        "<code>data_quality</code> with it as a parameter to release it.</p>",
        f'<p>Full results: <a href="{html.escape(data_docs_url)}">Data Docs</a></p>',
    ]
    for verdict in failed:
        where = verdict.quarantined_to or "marked in place (raw zone)"
        parts.append(
            f"<h3>{html.escape(verdict.partition)}</h3><p>{verdict.rows} rows, "
            f"{len(verdict.failures)} of {verdict.expectations} expectations failed; "
            f"quarantined: {html.escape(where)}</p><ul>"
        )
        for failure in verdict.failures:
            parts.append(
                f"<li><b>{html.escape(failure.describe())}</b>{_table(failure.samples)}</li>"
            )
        parts.append("</ul>")
    return "\n".join(parts)
