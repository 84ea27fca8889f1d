"""Where the profile's history comes from: the lake's curated events, or the NAB files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakepulse.quality.profile import DEFAULT_MARGIN, propose_profile
from lakepulse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def nab_history(spark: SparkSession, settings: Settings) -> DataFrame:
    """Every NAB row as (source, value), the source named as the replay names it."""
    from pyspark.sql import functions as F

    from lakepulse.sources.nab import data_dir

    files = "file://" + str(data_dir(settings.paths.nab_dir)) + "/*/*.csv"
    name = F.regexp_extract(F.input_file_name(), r"([^/]+)/([^/]+)\.csv$", 0)
    return spark.read.csv(files, header=True).select(
        F.regexp_replace(name, r"\.csv$", "").alias("source"),
        F.col("value").cast("double").alias("value"),
    )


def profile_history(
    settings: Settings, *, from_nab: bool = False, margin: float = DEFAULT_MARGIN
) -> dict[str, Any]:
    """Propose a profile from the trusted curated events (all of them before any verdict)."""
    from lakepulse.lake import read_table
    from lakepulse.quality.verdicts import read_trusted
    from lakepulse.spark_session import build_spark

    spark = build_spark(settings, "quality_profile")
    try:
        if from_nab:
            history = nab_history(spark, settings)
            learned_from = {"nab_series": "data/<category>/<series>.csv of the NAB corpus"}
        else:
            history = read_trusted(spark, settings, "events")
            learned_from = {"table": "events", "partitions": "trusted"}
            if history is None:
                history = read_table(spark, settings, "events")
                learned_from["partitions"] = "all (none validated yet)"
            if history is None:
                raise SystemExit("the lake has no curated events yet: nothing to learn from")
        return propose_profile(history, margin=margin, learned_from=learned_from)
    finally:
        spark.stop()
