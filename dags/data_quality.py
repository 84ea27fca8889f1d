"""data_quality: validate every newly landed partition with Great Expectations.

Starts when the streaming job has closed new partitions (the asset
`lakepulse_landed_partitions`, watched by a trigger) and every 30 minutes as a fallback. The
Spark job validates each closed, unjudged partition of raw_events, events and the aggregates
against the suites in `expectations/gx`, moves failed ones out of the way (quarantine),
records every verdict and reconciles Kafka offsets with rows landed. Then an alert e-mail
names the failed expectations with sample rows, and the run fails so that it shows red.

Re-validate (e.g. release a repaired partition) by triggering with
`{"partitions": ["events/event_date=2026-11-25"]}`. Data Docs: the "Data Docs" entry of the
Airflow menu. Readers of validated data use `lakepulse.quality.verdicts.read_trusted`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    AssetWatcher,
    CronTriggerTimetable,
    Param,
    dag,
    task,
)

from operators.lakepulse_spark import LakepulseSparkSubmitOperator
from triggers.landed_partitions import LandedPartitionsTrigger

LANDED = Asset(
    name="lakepulse_landed_partitions",
    uri="lakepulse://lake/landed-partitions",
    watchers=[AssetWatcher(name="landed_partitions", trigger=LandedPartitionsTrigger())],
)
VALIDATED = Asset(name="lakepulse_validated_partitions", uri="lakepulse://lake/validated")


@dag(
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("*/30 * * * *", timezone="UTC"), assets=LANDED
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "partitions": Param(
            [],
            type="array",
            items={"type": "string"},
            description="partitions to (re)validate, e.g. events/event_date=2026-11-25; "
            "empty: every closed partition without a verdict",
        ),
    },
    tags=["lakepulse", "quality"],
    doc_md=__doc__,
)
def data_quality():
    validate = LakepulseSparkSubmitOperator(
        task_id="validate_partitions",
        script="validate_partitions.py",
        application_args=[
            "--run-id", "{{ run_id }}", "--partitions-json", "{{ params.partitions | tojson }}",
        ],
    )  # fmt: skip

    @task(outlets=[VALIDATED])
    def alert(run_id: str | None = None, outlet_events=None) -> dict:
        """E-mail the failed partitions (what failed, sample rows); announce the passed ones."""
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        from lakepulse.connections import SMTP_CONN_ID
        from lakepulse.quality.runs import load_run
        from lakepulse.settings import get_settings
        from lakepulse.webhdfs import WebHdfs

        settings = get_settings()
        outcome = load_run(WebHdfs(settings.hdfs), settings, run_id)
        message = outcome.alert(settings)
        if message is not None:
            subject, body = message
            with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as smtp:
                smtp.send_email_smtp(
                    to=[r.strip() for r in settings.smtp.recipients.split(",") if r.strip()],
                    subject=subject,
                    html_content=body,
                    from_email=settings.smtp.sender,
                )
        outlet_events[VALIDATED].extra = {"passed": outcome.passed}
        return {**outcome.as_dict(), "emailed": message is not None}

    @task
    def fail_if_quarantined(summary: dict) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        if summary["failed"] or summary.get("reconciled") is False:
            raise AirflowFailException(
                f"failed validation and quarantined: {summary['failed']}; Kafka reconciliation "
                f"passed: {summary.get('reconciled')}. The alert e-mail and Data Docs say why."
            )

    summary = alert()
    validate >> summary
    fail_if_quarantined(summary)


data_quality()
