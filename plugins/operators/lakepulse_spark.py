"""SparkSubmitOperator for Lakepulse's own jobs (the scripts in spark/)."""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from lakepulse.connections import SPARK_CONN_ID
from lakepulse.settings import PROJECT_ROOT, get_settings
from lakepulse.spark_session import spark_submit_conf, spark_submit_env, spark_submit_jars


class LakepulseSparkSubmitOperator(SparkSubmitOperator):
    """Submits ``<folder>/<script>`` (``spark/`` by default, ``ml/`` for the models) with the
    Spark connection, configuration and environment that Lakepulse's settings give every job;
    ``with_kafka`` adds the Kafka connector's jars.
    Everything SparkSubmitOperator takes can still be given (and wins)."""

    def __init__(
        self, *, script: str, with_kafka: bool = False, folder: str = "spark", **kwargs: Any
    ) -> None:
        settings = get_settings()
        kwargs.setdefault("conn_id", SPARK_CONN_ID)
        kwargs.setdefault("name", "lakepulse-" + script.removesuffix(".py").replace("_", "-"))
        kwargs.setdefault("conf", spark_submit_conf(settings))
        kwargs.setdefault("env_vars", spark_submit_env())
        if with_kafka:
            kwargs.setdefault("jars", ",".join(spark_submit_jars(settings, required=False)) or None)
        super().__init__(application=str(PROJECT_ROOT / folder / script), **kwargs)
