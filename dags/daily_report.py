"""daily_report: the morning report on yesterday (UTC), by e-mail and as a dashboard page.

`run_analyses` answers the named questions (plugins/lakepulse/analysis/queries/) with Spark
SQL over the lake: volume per source and hour, data-quality pass rate, pipeline lag and
restarts, top anomalies, forecast vs actual, trend per source. `render_and_send` draws the
charts, publishes the page at `/reports/<day>/index.html` on the API server ("Daily reports"
in the Browse menu), and e-mails it, charts inline, through the SMTP connection
`lakepulse_smtp` to `[smtp] recipients`.

Report on another day by triggering with `{"day": "2026-11-25"}`; a re-run for a day gives the
same report.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import CronTriggerTimetable, Param, dag, task


@dag(
    schedule=CronTriggerTimetable("30 6 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="the UTC day to report on (YYYY-MM-DD); empty: the day before the run",
        ),
    },
    tags=["lakepulse", "reports"],
    doc_md=__doc__,
)
def daily_report():
    @task
    def run_analyses(params: dict, dag_run=None) -> str:
        """Run the report's queries for the day (one Spark session); keep the results."""
        from lakepulse.reports import analyse
        from lakepulse.reports.daily import report_day, save_data
        from lakepulse.settings import get_settings

        settings = get_settings()
        day = report_day(params.get("day"), dag_run.run_after)
        data = analyse(settings, day)
        print(f"analyses of {day} saved in {save_data(settings, data)}")
        return day.isoformat()

    @task
    def render_and_send(day: str) -> dict:
        """Charts, page and e-mail in one task: the e-mail's images are files made here."""
        from datetime import date

        from lakepulse.reports.daily import load_data, page_url, publish, send
        from lakepulse.settings import get_settings

        settings = get_settings()
        published = publish(settings, load_data(settings, date.fromisoformat(day)))
        sent_to = send(settings, published)
        print(f"report {published.subject!r} sent to {sent_to}; page {published.page}")
        return {
            "day": day,
            "subject": published.subject,
            "recipients": sent_to,
            "page": page_url(settings, published.day),
            "numbers": {n.label: n.value for n in published.numbers},
        }

    render_and_send(run_analyses())


daily_report()
