"""scoring_supervisor: keep live scoring running once there is a champion model.

A continuous DAG, one run at a time: wait for a `champion` in the MLflow registry, wait until
the scoring job is not running (its heartbeat in HDFS), then run `ml/score_events.py`, which
lives as long as the job does. When it ends, the next run starts it again from its checkpoint
(no event lost, none scored twice). A new champion needs no restart: the job picks it up.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag

from lakepulse.connections import WEBHDFS_CONN_ID
from lakepulse.settings import get_settings
from operators.lakepulse_spark import LakepulseSparkSubmitOperator
from sensors.model_registry import ModelAliasSensor
from sensors.streaming_job import StreamingJobDownSensor

settings = get_settings()


@dag(
    schedule="@continuous",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0},
    tags=["lakepulse", "ml"],
    doc_md=__doc__,
)
def scoring_supervisor():
    champion = ModelAliasSensor(
        task_id="wait_for_champion",
        model_name=settings.ml.registered_model,
        alias="champion",
        tracking_uri=settings.mlflow.tracking_uri,
        mode="reschedule",
        poke_interval=60,
        timeout=timedelta(days=365).total_seconds(),
    )
    job_down = StreamingJobDownSensor(
        task_id="wait_until_scoring_is_down",
        status_dir=settings.status_path,
        heartbeat_timeout=settings.spark.heartbeat_timeout_seconds,
        webhdfs_conn_id=WEBHDFS_CONN_ID,
        job="score_events",
        mode="reschedule",
        poke_interval=30,
        timeout=timedelta(days=365).total_seconds(),
    )
    run = LakepulseSparkSubmitOperator(task_id="run_score_events", folder="ml",
                                       script="score_events.py")  # fmt: skip
    champion >> job_down >> run


scoring_supervisor()
