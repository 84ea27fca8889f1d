"""Spark configuration for Lakepulse, from one place.

``build_spark`` (in-process: jobs, tests, ad-hoc SQL) and ``spark_submit_conf`` /
``spark_submit_jars`` (Airflow's SparkSubmitOperator) derive from the same settings, so a job
behaves the same however it was started. pyspark is imported lazily: DAG files import this
module at parse time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lakepulse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

KAFKA_JARS_SUBDIR = "spark-kafka"


class SparkSetupError(RuntimeError):
    """Spark cannot be configured as asked (for example the Kafka jars are missing)."""


def kafka_jars_dir(settings: Settings) -> Path:
    return settings.paths.jars_dir / KAFKA_JARS_SUBDIR


def kafka_jars(settings: Settings) -> list[str]:
    """The Kafka connector's jars (pip pyspark ships without them); raises if not fetched."""
    folder = kafka_jars_dir(settings)
    jars = sorted(str(jar) for jar in folder.glob("*.jar"))
    if not jars:
        raise SparkSetupError(
            f"Spark's Kafka connector jars are missing: {folder} has no .jar files. "
            "Run `make jars` to fetch spark-sql-kafka-0-10_2.13 and its dependencies there."
        )
    return jars


def default_fs(fs_uri: str) -> str:
    """fs.defaultFS for a filesystem URI: 'hdfs://host:8020/', or 'file:///' for 'file://'."""
    parts = urlsplit(fs_uri)
    return f"{parts.scheme}://{parts.netloc}/"


def _base_conf(settings: Settings) -> dict[str, str]:
    user = settings.hdfs.user
    # Simple auth: Hadoop's client takes the user from $HADOOP_USER_NAME or this system
    # property; the property travels with spark-submit --conf, the environment may not.
    user_property = f"-DHADOOP_USER_NAME={user}"
    # Off by default: a long-running job on a shared machine should not grab 4040, 4041, ...
    ui_port = settings.spark.ui_port
    conf = {
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        # Timestamps are instants; rendering and date functions must not depend on the host.
        "spark.sql.session.timeZone": "UTC",
        "spark.hadoop.fs.defaultFS": default_fs(settings.hdfs.fs_uri),
        # Not ./spark-warehouse in whatever directory the command was started from.
        "spark.sql.warehouse.dir": settings.hdfs.lake_path("_warehouse"),
        "spark.driver.extraJavaOptions": user_property,
        "spark.executor.extraJavaOptions": user_property,
        "spark.executorEnv.HADOOP_USER_NAME": user,
        "spark.yarn.appMasterEnv.HADOOP_USER_NAME": user,
        # spark-submit would otherwise run the driver with whatever "python3" is on PATH,
        # which under Airflow is not necessarily the venv that has pyspark and lakepulse.
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        # Progress bars are noise in Airflow task logs.
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "true" if ui_port else "false",
    }
    if ui_port:
        conf["spark.ui.port"] = str(ui_port)
    if settings.spark.master.startswith("local"):
        # Everything runs in this JVM: keep its ports on loopback, not on the host's address.
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    return conf


def spark_submit_conf(settings: Settings) -> dict[str, str]:
    """``conf=`` for SparkSubmitOperator (the master comes from the Spark connection)."""
    return _base_conf(settings)


def spark_submit_env() -> dict[str, str]:
    """``env_vars=`` for SparkSubmitOperator.

    pip's spark-submit finds SPARK_HOME by asking whatever `python3` is first on PATH; name it
    so that PATH cannot mislead. find_spec locates pyspark without importing it (DAG files
    call this at parse time).
    """
    return {"SPARK_HOME": str(Path(find_spec("pyspark").origin).parent)}


def spark_submit_jars(settings: Settings, *, required: bool = True) -> list[str]:
    """``jars=`` (joined with commas) for jobs that read Kafka.

    ``required=False`` returns [] when the jars are not fetched yet, for DAG files parsed on
    machines without them (the job then fails at run time with Spark's own error).
    """
    try:
        return kafka_jars(settings)
    except SparkSetupError:
        if required:
            raise
        return []


def build_spark(
    settings: Settings,
    app_name: str,
    *,
    with_kafka: bool = False,
    extra_conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """A SparkSession configured from settings (``extra_conf`` wins over them).

    Like ``getOrCreate``, this returns the running session if there is one; JVM options
    (driver memory, jars) only apply to the first session of a process.
    """
    conf = _base_conf(settings)
    if with_kafka:
        conf["spark.jars"] = ",".join(kafka_jars(settings))
    conf.update(extra_conf or {})

    from pyspark.sql import SparkSession  # heavy: only when a session is really wanted

    # Python workers of an in-process session start `python3` from PATH unless told otherwise;
    # the lateness stamp needs this environment's pandas and pyarrow.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    builder = SparkSession.builder.master(settings.spark.master).appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
