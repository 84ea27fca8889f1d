"""streaming_supervisor: keep the ingest streaming job (Kafka -> HDFS raw zone) running.

A continuous DAG, one run at a time. Each run waits until the job is *not* running (no fresh
heartbeat in HDFS), records why (HDFS `_status/restarts/`, and the task's return value), then
runs it through the Spark provider's SparkSubmitOperator, which lives as long as the job does.
Beside it, `watch_job` compares Kafka's end offsets with the offsets the job has committed: a
job that is stalled (data waiting, nothing committed for a while) or falling behind (lag over
the limit and growing) is stopped by `stop_unhealthy_job`. When the job ends, for whatever
reason, the run fails and the next run starts it again from its checkpoint.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from lakepulse.connections import KAFKA_CONN_ID, WEBHDFS_CONN_ID
from lakepulse.settings import get_settings
from operators.lakepulse_spark import LakepulseSparkSubmitOperator
from sensors.streaming_job import StreamingJobDownSensor, StreamingJobWatchdogSensor

settings = get_settings()


@dag(
    schedule="@continuous",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0},
    tags=["lakepulse", "streaming"],
    doc_md=__doc__,
)
def streaming_supervisor():
    job_down = StreamingJobDownSensor(
        task_id="wait_until_job_is_down",
        status_dir=settings.status_path,
        heartbeat_timeout=settings.spark.heartbeat_timeout_seconds,
        webhdfs_conn_id=WEBHDFS_CONN_ID,
        mode="reschedule",
        poke_interval=30,
        timeout=timedelta(days=365).total_seconds(),
    )
    run_job = LakepulseSparkSubmitOperator(
        task_id="run_ingest_events", script="ingest_events.py", with_kafka=True
    )
    supervision = settings.supervision
    watch = StreamingJobWatchdogSensor(
        task_id="watch_job",
        status_dir=settings.status_path,
        checkpoint_dir=f"{settings.hdfs.lake_root.rstrip('/')}/_checkpoints/ingest_events/"
        "ingest_events_raw",
        topic=settings.kafka.events_topic,
        heartbeat_timeout=settings.spark.heartbeat_timeout_seconds,
        stall_after_s=supervision.stall_after_seconds,
        max_lag=supervision.max_lag,
        growth_window_s=supervision.lag_growth_window_seconds,
        start_grace_s=supervision.start_grace_seconds,
        poke_interval=supervision.poke_seconds,
        timeout=timedelta(days=365).total_seconds(),
        webhdfs_conn_id=WEBHDFS_CONN_ID,
        kafka_conn_id=KAFKA_CONN_ID,
    )

    @task
    def stop_unhealthy_job(verdict: dict) -> str:
        """Stop a stalled or lagging job; its run then fails and the next run restarts it."""
        from hooks.lakepulse_hooks import LakepulseWebHdfsHook
        from lakepulse.services.process import pid_alive
        from lakepulse.streaming.control import stop_local_driver
        from lakepulse.streaming_status import record_restart

        # "ended" covers a hung driver too (stale heartbeat, process still there).
        pid = verdict.get("pid")
        if verdict.get("outcome") != "unhealthy" and not (pid and pid_alive(int(pid))):
            return f"nothing to stop: {verdict.get('reason')}"
        client = LakepulseWebHdfsHook(WEBHDFS_CONN_ID).get_conn()
        record_restart(client, settings.status_path, verdict["reason"], action="stop",
                       app_id=verdict.get("app_id"), pid=verdict.get("pid"))  # fmt: skip
        return stop_local_driver(verdict.get("pid"), verdict.get("host"))

    job_down >> [run_job, watch]
    stop_unhealthy_job(watch.output)


streaming_supervisor()
