"""compact_lake: daily, rewrite the closed date partitions of the curated and aggregate tables
(many small per-batch files) as one sorted file each, so queries skip by source.

Closed means at least two days old: the stream no longer writes there. The raw zone is left
as it is (its file sink's log lists its files). See lakepulse.streaming.compaction.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag

from operators.lakepulse_spark import LakepulseSparkSubmitOperator


@dag(
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["lakepulse", "streaming"],
    doc_md=__doc__,
)
def compact_lake():
    LakepulseSparkSubmitOperator(
        task_id="compact_closed_partitions",
        script="compact_lake.py",
        application_args=["--older-than-days", "2", "--min-files", "4"],
    )


compact_lake()
