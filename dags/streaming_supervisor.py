"""streaming_supervisor: keep the ingest streaming job (Kafka -> HDFS raw zone) running.

A continuous DAG, one run at a time. Each run waits until the job is *not* running (no fresh
heartbeat in HDFS), records why, then runs it through the Spark provider's
SparkSubmitOperator, which lives as long as the job does. When the job dies the run fails
and the next run starts it again from its checkpoint: the grid of runs is the restart history,
and each run's `wait_until_job_is_down` return value says why it was (re)started.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from importlib.util import find_spec
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import dag

from lakepulse.connections import SPARK_CONN_ID, WEBHDFS_CONN_ID
from lakepulse.settings import PROJECT_ROOT, get_settings
from lakepulse.spark_session import spark_submit_conf, spark_submit_jars
from sensors.streaming_job import StreamingJobDownSensor

settings = get_settings()


def pyspark_home() -> str:
    # find_spec locates pyspark without importing it (DAG files stay light to parse).
    return str(Path(find_spec("pyspark").origin).parent)


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
    run_job = SparkSubmitOperator(
        task_id="run_ingest_events",
        application=str(PROJECT_ROOT / "spark" / "ingest_events.py"),
        conn_id=SPARK_CONN_ID,
        name="lakepulse-ingest-events",
        conf=spark_submit_conf(settings),
        jars=",".join(spark_submit_jars(settings, required=False)) or None,
        # pip's spark-submit finds SPARK_HOME by asking `python3`; name it so PATH cannot mislead.
        env_vars={"SPARK_HOME": str(Path(pyspark_home()))},
    )
    job_down >> run_job


streaming_supervisor()
