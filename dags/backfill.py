"""backfill: recompute the event-time aggregates for a date range from the raw zone.

Triggered by hand or through the REST API with the range as parameters, e.g.
`{"conf": {"start": "2026-11-20", "end": "2026-11-26"}}`. The Spark batch job overwrites
exactly the date partitions of the range in `events_agg_1m` and `events_agg_5m` (dynamic
partition overwrite), so re-running a range gives the same result.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from operators.lakepulse_spark import LakepulseSparkSubmitOperator

DATE = {"type": "string", "format": "date"}


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "start": Param(datetime.now().date().isoformat(), **DATE, description="first date"),
        "end": Param(datetime.now().date().isoformat(), **DATE, description="last date"),
    },
    tags=["lakepulse", "streaming"],
    doc_md=__doc__,
)
def backfill():
    @task
    def check_range(params: dict) -> dict:
        """Refuse an inverted range before Spark starts (clear error, nothing overwritten)."""
        from datetime import date

        start, end = date.fromisoformat(params["start"]), date.fromisoformat(params["end"])
        if end < start:
            raise ValueError(f"backfill range is inverted: start {start} is after end {end}")
        return {"start": start.isoformat(), "end": end.isoformat(), "days": (end - start).days + 1}

    recompute = LakepulseSparkSubmitOperator(
        task_id="recompute_aggregates",
        script="recompute_aggregates.py",
        application_args=["--start", "{{ params.start }}", "--end", "{{ params.end }}"],
    )
    check_range() >> recompute


backfill()
