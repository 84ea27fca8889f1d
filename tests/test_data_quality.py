"""data_quality on the running platform: partitions of curated events are injected into HDFS,
one clean and one per kind of bad data; the landed-partitions trigger starts the DAG, which
validates them all, quarantines exactly the bad ones for the right reasons and e-mails an
alert to the local mailbox; the stand-in reader skips what was quarantined; Data Docs are
served by the API server. The session's own partitions (real replayed data) must all pass.

The injected partitions sit 4,800 days before their NAB dates (around 2000-2001), far behind
the watermark of anything the session streams, so the stream counts them as closed."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from conftest import wait_for
from dq_faults import EXPECTED_REASON, FAULTS, SOURCE, faulty_frame

from lakepulse.quality import verdicts as store
from lakepulse.quality.partitions import Partition, _hdfs_path, watermarks
from lakepulse.quality.runs import load_run
from lakepulse.streaming_status import read_heartbeat
from lakepulse.webhdfs import WebHdfs

pytestmark = [pytest.mark.quality, pytest.mark.integration]

SHIFT_DAYS = 4800
KINDS = (None, *FAULTS)  # None: the clean partition
VERDICT_DEADLINE_S = 900


def _cron_is_near() -> bool:
    """Within two minutes of the fallback schedule (:00, :30), which would race the trigger."""
    now = dt.datetime.now(dt.UTC)
    return (now.minute % 30) >= 28 or (now.minute % 30) < 1


@pytest.fixture(scope="module")
def injected(job_running, lake_spark) -> dict[str | None, Partition]:
    from lakepulse.producer import produce

    settings = job_running
    client = WebHdfs(settings.hdfs)
    # The stream closes a partition once its watermark has passed it: give it a NAB day.
    report = produce(settings, sources=SOURCE, speedup=0, limit=300, progress=False, rebase=False)
    assert report.ok, report.as_dict()
    wait_for(lambda: watermarks(read_heartbeat(client, settings.status_path)),
             lambda marks: all(m.year >= 2014 for m in marks.values()) and len(marks) >= 2,
             300, "the stream's watermarks past 2014")  # fmt: skip
    wait_for(_cron_is_near, lambda near: not near, 240, "a moment away from the cron schedule")
    partitions = {}
    for number, kind in enumerate(KINDS):
        frame = faulty_frame(
            lake_spark, settings, kind, day_index=3 + number, shift_days=SHIFT_DAYS
        )
        day = frame.select("event_time").first()[0].date()
        partition = Partition("events", day)
        frame.write.mode("overwrite").parquet(partition.path(settings))
        partitions[kind] = partition
    return partitions


@pytest.fixture(scope="module")
def judged(injected, job_running) -> dict[str | None, store.Verdict]:
    settings = job_running
    client = WebHdfs(settings.hdfs)
    wanted = set(injected.values())
    wait_for(lambda: set(store.verdicts(client, settings, "events")),
             lambda found: wanted <= found, VERDICT_DEADLINE_S,
             "verdicts on every injected partition")  # fmt: skip
    return {kind: store.read_verdict(client, settings, p) for kind, p in injected.items()}


def test_a_clean_partition_passes_and_stays(injected, judged, job_running):
    verdict = judged[None]
    assert verdict.passed, [f.describe() for f in verdict.failures]
    assert verdict.quarantined_to is None
    assert WebHdfs(job_running.hdfs).exists(_hdfs_path(injected[None].path(job_running)))


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_caught_for_its_reason_and_quarantined(fault, injected, judged, job_running):
    verdict = judged[fault]
    client = WebHdfs(job_running.hdfs)
    assert not verdict.passed
    assert EXPECTED_REASON[fault] in verdict.reasons, [f.describe() for f in verdict.failures]
    assert verdict.quarantined_to and client.exists(verdict.quarantined_to)
    assert not client.exists(_hdfs_path(injected[fault].path(job_running)))


def test_readers_of_trusted_data_skip_quarantined_partitions(injected, judged, job_running,
                                                             lake_spark):  # fmt: skip
    from pyspark.sql import functions as F

    settings = job_running
    trusted = store.trusted_partitions(WebHdfs(settings.hdfs), settings, "events")
    assert injected[None].day in trusted
    assert not {injected[f].day for f in FAULTS} & set(trusted)
    frame = store.read_trusted(lake_spark, settings, "events")
    days = {row[0] for row in frame.where(F.col("event_date") < "2002-01-01")
            .select("event_date").distinct().collect()}  # fmt: skip
    assert days == {injected[None].day}


def test_nothing_real_was_quarantined(judged, job_running):
    """Every other partition judged this session (the streamed, real data) passed."""
    settings = job_running
    client = WebHdfs(settings.hdfs)
    injected_days = {v.partition for v in judged.values()}
    failed = {
        partition.key
        for table in ("raw_events", "events", "events_agg_1m", "events_agg_5m")
        for partition, passed in store.verdicts(client, settings, table).items()
        if not passed and partition.key not in injected_days
    }
    assert failed == set(), [
        store.read_verdict(client, settings, Partition.parse(k)) for k in failed
    ]


def test_the_run_was_started_by_the_landed_partitions_asset(judged, job_running):
    from lakepulse.airflow_api import AirflowApi

    api = AirflowApi.for_settings(job_running)
    run_id = judged[FAULTS[0]].run_id
    run = api.wait_for_run("data_quality", run_id, timeout=300)
    assert run["run_type"] == "asset_triggered", run
    assert run["state"] == "failed"  # red: partitions were quarantined
    outcome = load_run(WebHdfs(job_running.hdfs), job_running, run_id)
    assert outcome.reconciled is True  # every Kafka offset consumed landed, once
    states = {ti["task_id"]: ti["state"] for ti in api.task_instances("data_quality", run_id)}
    assert states == {"validate_partitions": "success", "alert": "success",
                      "fail_if_quarantined": "failed"}  # fmt: skip


def test_an_alert_names_the_failed_expectations_with_sample_rows(judged, job_running):
    from lakepulse.services.mailbox import read_messages

    settings = job_running
    failed = {judged[f].partition for f in FAULTS}

    def alerts():
        return [m for m in read_messages(settings.mailbox_dir)
                if "data quality" in m["Subject"] and any(p in m.get_body().get_content()
                                                          for p in failed)]  # fmt: skip

    (message,) = wait_for(alerts, bool, 300, "the alert e-mail")[:1]
    body = message.get_body(preferencelist=("html",)).get_content()
    assert message["To"] and settings.smtp.recipients.split(",")[0] in message["To"]
    for fault in FAULTS:
        assert judged[fault].partition in body
        assert EXPECTED_REASON[fault] in body
    assert "1000000.0" in body  # the out-of-range sample rows
    assert "/data-docs/index.html" in body


def test_data_docs_are_served_by_the_api_server(judged, job_running):
    response = requests.get(f"{job_running.airflow.url}/data-docs/index.html", timeout=30)
    assert response.status_code == 200
    assert "events" in response.text and "Data Docs" in response.text


def test_the_pass_rate_can_be_charted_from_the_results(judged, job_running, lake_rows):
    query = (
        "select passed, count(*) from quality_results "
        "where `table` = 'events' and partition_date < '2002-01-01' group by passed"
    )
    assert dict(lake_rows(query)) == {True: 1, False: len(FAULTS)}
