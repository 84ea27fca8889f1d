"""cluster_health: every few minutes, check each part of the platform.

A failed task names the broken part and what was seen (e.g. "Kafka is unhealthy: no broker
metadata within 10s: ..."), so the run's red square in the grid says what to fix.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from lakepulse.connections import (
    AIRFLOW_API_CONN_ID,
    KAFKA_CONN_ID,
    MLFLOW_CONN_ID,
    WEBHDFS_CONN_ID,
)

DEFAULT_ARGS = {"retries": 0, "execution_timeout": timedelta(minutes=2)}


@dag(
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["lakepulse", "platform"],
    doc_md=__doc__,
)
def cluster_health():
    @task
    def kafka() -> str:
        from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook

        from lakepulse.health import check_kafka, require
        from lakepulse.settings import get_settings

        admin = KafkaAdminClientHook(kafka_config_id=KAFKA_CONN_ID).get_conn
        return require("Kafka", check_kafka(admin, get_settings().kafka.events_topic))

    @task
    def hdfs() -> str:
        from hooks.lakepulse_hooks import LakepulseWebHdfsHook
        from lakepulse.health import check_namenode, require

        return require(
            "HDFS", check_namenode(LakepulseWebHdfsHook(WEBHDFS_CONN_ID).namenode_http_url())
        )

    @task
    def streaming_job() -> str:
        from hooks.lakepulse_hooks import LakepulseWebHdfsHook
        from lakepulse.health import check_streaming_job, require
        from lakepulse.settings import get_settings

        settings = get_settings()
        client = LakepulseWebHdfsHook(WEBHDFS_CONN_ID).get_conn()
        health = check_streaming_job(
            client, settings.status_path, settings.spark.heartbeat_timeout_seconds
        )
        return require("Streaming job", health)

    @task
    def mlflow() -> str:
        from hooks.lakepulse_hooks import HttpEndpointHook
        from lakepulse.health import check_http, require

        url = HttpEndpointHook(MLFLOW_CONN_ID).base_url() + "/health"
        return require("MLflow", check_http("MLflow", url))

    @task
    def airflow() -> str:
        from hooks.lakepulse_hooks import HttpEndpointHook
        from lakepulse.health import check_airflow, require

        return require("Airflow", check_airflow(HttpEndpointHook(AIRFLOW_API_CONN_ID).base_url()))

    kafka()
    hdfs()
    streaming_job()
    mlflow()
    airflow()


cluster_health()
