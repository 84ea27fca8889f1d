"""compact_lake: daily, rewrite the closed date partitions of the curated and aggregate tables
(many small per-batch files) as one sorted file each, so queries skip by source.

Closed means at least two days old: the stream no longer writes there. The raw zone is left
as it is (its file sink's log lists its files). See lakepulse.streaming.compaction.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import dag

from lakepulse.connections import SPARK_CONN_ID
from lakepulse.settings import PROJECT_ROOT, get_settings
from lakepulse.spark_session import spark_submit_conf, spark_submit_env

settings = get_settings()


@dag(
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["lakepulse", "streaming"],
    doc_md=__doc__,
)
def compact_lake():
    SparkSubmitOperator(
        task_id="compact_closed_partitions",
        application=str(PROJECT_ROOT / "spark" / "compact_lake.py"),
        conn_id=SPARK_CONN_ID,
        name="lakepulse-compact-lake",
        conf=spark_submit_conf(settings),
        application_args=["--older-than-days", "2", "--min-files", "4"],
        env_vars=spark_submit_env(),
    )


compact_lake()
