"""Airflow connections derived from Lakepulse's settings.

Settings are the one source of truth for endpoints; Airflow sees them as connections
(AIRFLOW_CONN_<ID> environment variables in JSON form), which DAGs and hooks use by id.
"""

from __future__ import annotations

import json

from lakepulse.settings import Settings

KAFKA_CONN_ID = "lakepulse_kafka"
SPARK_CONN_ID = "lakepulse_spark"
WEBHDFS_CONN_ID = "lakepulse_webhdfs"
HDFS_CONN_ID = "lakepulse_hdfs"
MLFLOW_CONN_ID = "lakepulse_mlflow"
SMTP_CONN_ID = "lakepulse_smtp"
AIRFLOW_API_CONN_ID = "lakepulse_airflow_api"


def connections(settings: Settings) -> dict[str, dict]:
    hdfs = settings.hdfs
    extra_spark = {"deploy-mode": settings.spark.deploy_mode, "spark-binary": "spark-submit"}
    return {
        KAFKA_CONN_ID: {
            "conn_type": "kafka",
            "extra": {"bootstrap.servers": settings.kafka.bootstrap_servers},
        },
        # The Spark provider takes a master without "://" (local[2], yarn) from the host field.
        SPARK_CONN_ID: {"conn_type": "spark", "host": settings.spark.master, "extra": extra_spark},
        WEBHDFS_CONN_ID: {
            "conn_type": "webhdfs",
            "host": hdfs.namenode_host,
            "port": hdfs.namenode_http_port,
            "login": hdfs.user,
        },
        HDFS_CONN_ID: {
            "conn_type": "hdfs",
            "host": hdfs.namenode_host,
            "port": hdfs.namenode_rpc_port,
            "login": hdfs.user,
        },
        MLFLOW_CONN_ID: {
            "conn_type": "http",
            "host": settings.mlflow.host,
            "port": settings.mlflow.port,
            "schema": "http",
        },
        SMTP_CONN_ID: {
            "conn_type": "smtp",
            "host": settings.smtp.host,
            "port": settings.smtp.port,
            "extra": {
                "disable_tls": not settings.smtp.starttls,
                "disable_ssl": True,
                "from_email": settings.smtp.sender,
            },
        },
        AIRFLOW_API_CONN_ID: {
            "conn_type": "http",
            "host": settings.airflow.host,
            "port": settings.airflow.port,
            "schema": "http",
        },
    }


def airflow_connection_env(settings: Settings) -> dict[str, str]:
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)
        for conn_id, conn in connections(settings).items()
    }
