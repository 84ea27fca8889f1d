"""The daily report's folder, publication and e-mail.

``<data_dir>/reports/<day>/`` holds what the analyses returned (``data.json``), the key
numbers (``numbers.json``), the charts (``<name>.png``) and the page (``index.html``);
``<data_dir>/reports/index.html`` lists the days. The Airflow API server serves the folder at
``/reports/`` (plugins/reports_plugin.py). Publishing the same data again writes the same
bytes: a re-run for a day gives the same report.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from lakepulse.reports import KeyNumber, ReportData, as_dict, key_numbers
from lakepulse.reports.page import build_html, index_html, subject
from lakepulse.settings import Settings

URL_PREFIX = "/reports"


def reports_root(settings: Settings) -> Path:
    return settings.paths.data_dir / "reports"


def report_dir(settings: Settings, day: dt.date) -> Path:
    return reports_root(settings) / day.isoformat()


def page_url(settings: Settings, day: dt.date) -> str:
    return f"{settings.airflow.url}{URL_PREFIX}/{day.isoformat()}/index.html"


def recipients(settings: Settings) -> list[str]:
    return [r.strip() for r in settings.smtp.recipients.split(",") if r.strip()]


def report_day(requested: str | None, run_after: dt.datetime) -> dt.date:
    """The day a run reports on: the one asked for, else the UTC day before the run."""
    if requested:
        return dt.date.fromisoformat(requested)
    return (run_after.astimezone(dt.UTC) - dt.timedelta(days=1)).date()


def _write(path: Path, content: bytes) -> None:
    """Replace ``path`` whole: the API server never serves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


def save_data(settings: Settings, data: ReportData) -> Path:
    path = report_dir(settings, data.day) / "data.json"
    _write(path, data.to_json().encode())
    return path


def load_data(settings: Settings, day: dt.date) -> ReportData:
    return ReportData.from_json((report_dir(settings, day) / "data.json").read_text())


@dataclass(frozen=True)
class Published:
    day: dt.date
    folder: Path
    page: Path
    charts: dict[str, Path]
    numbers: list[KeyNumber]
    subject: str
    email_html: str


def publish(settings: Settings, data: ReportData) -> Published:
    """Render the charts and write the day's page beside them; update the list of days."""
    from lakepulse.reports.charts import render_charts

    folder = report_dir(settings, data.day)
    numbers = key_numbers(data)
    charts = {}
    for name, png in render_charts(data).items():
        charts[name] = folder / f"{name}.png"
        _write(charts[name], png)
    _write(folder / "numbers.json", json.dumps(as_dict(numbers), indent=1).encode())
    page = folder / "index.html"
    _write(page, build_html(data, numbers, lambda name: f"{name}.png").encode())
    days = [p.name for p in reports_root(settings).iterdir() if (p / "index.html").is_file()]
    _write(reports_root(settings) / "index.html", index_html(days).encode())
    # The e-mail references its inline parts by Content-ID, which SmtpHook sets to the name.
    email_html = build_html(data, numbers, lambda name: f"cid:{name}.png",
                            page_url=page_url(settings, data.day))  # fmt: skip
    return Published(data.day, folder, page, charts, numbers, subject(data, numbers), email_html)


def send(settings: Settings, published: Published, conn_id: str | None = None) -> list[str]:
    """E-mail the report through Airflow's SMTP connection, charts inline; returns recipients."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    from lakepulse.connections import SMTP_CONN_ID

    to = recipients(settings)
    with SmtpHook(smtp_conn_id=conn_id or SMTP_CONN_ID) as smtp:
        smtp.send_email_smtp(
            to=to,
            subject=published.subject,
            html_content=published.email_html,
            from_email=settings.smtp.sender,
            # "related": the images belong to the HTML part, which shows them in place.
            files=[str(path) for path in published.charts.values()],
            mime_subtype="related",
        )
    return to
