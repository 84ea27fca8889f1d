"""Versions that must agree across Python and the JVM parts."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = pytest.mark.platform

ROOT = Path(__file__).resolve().parents[1]


def test_pyspark_files_and_the_spark_provider_client_are_one_version():
    import pyspark

    # Mixed installs left pyspark's Python files at another version than its jars.
    assert pyspark.__version__ == version("pyspark") == version("pyspark-client")


def test_the_spark_kafka_connector_matches_pyspark():
    import pyspark

    pom = (ROOT / "infra" / "pom.xml").read_text()
    spark_version = re.search(r"<spark.version>([^<]+)</spark.version>", pom).group(1)
    assert spark_version == pyspark.__version__
    fetched = ROOT / "infra" / "target" / "spark-kafka"
    connector = list(fetched.glob("spark-sql-kafka-0-10_2.13-*.jar"))
    assert [jar.name for jar in connector] == [f"spark-sql-kafka-0-10_2.13-{spark_version}.jar"]
