"""The DataFrames a partition is validated through: pure functions, no I/O.

Great Expectations checks columns of one frame. What a partition must meet is partly about
its rows (keys, types, ranges) and partly about summaries of it (each source's distribution
against its history; the Kafka offsets consumed against the rows landed), so each of those
gets a frame of its own:

- :func:`with_learned_ranges`: the partition's rows plus each source's allowed value range;
- :func:`source_summary`: one row per source, its mean and spread against its history;
- :func:`offset_reconciliation`: one row per Kafka partition, offsets consumed vs landed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Fewer rows than this for a source in a partition say nothing about its distribution.
MIN_ROWS_FOR_DISTRIBUTION = 30

_PROFILE_SCHEMA = (
    "source string, value_low double, value_high double, history_mean double, history_std double"
)


def profile_frame(spark: SparkSession, profile: Mapping[str, Any]) -> DataFrame:
    """The per-source part of a profile (see :mod:`lakepulse.quality.profile`) as a frame."""
    rows = [
        (source, stats["low"], stats["high"], stats["mean"], stats["std"])
        for source, stats in sorted(profile.get("sources", {}).items())
    ]
    return spark.createDataFrame(rows, _PROFILE_SCHEMA)


def with_learned_ranges(rows: DataFrame, profile: DataFrame) -> DataFrame:
    """``rows`` plus ``value_low``/``value_high``: the source's allowed range (null when the
    source has no history yet, which the range expectations then skip). A frame without a
    ``source`` column (a schema change) is returned as it is, for the schema checks to fail."""
    from pyspark.sql import functions as F

    if "source" not in rows.columns:
        return rows
    ranges = profile.select("source", "value_low", "value_high")
    return rows.join(F.broadcast(ranges), on="source", how="left")


def source_summary(rows: DataFrame, profile: DataFrame) -> DataFrame:
    """Per source with enough rows: its mean and spread here and in its history.

    ``mean_shift_sigmas`` is |mean - historical mean| / historical standard deviation;
    ``spread_ratio`` is the standard deviation here over the historical one. Both are null for
    a source without history, or whose history is constant and which stays at that constant.
    """
    from pyspark.sql import functions as F

    if not {"source", "value"} <= set(rows.columns):
        return rows.sparkSession.createDataFrame(
            [], "source string, rows long, mean double, mean_shift_sigmas double, "
            "spread_ratio double"
        )  # fmt: skip
    value = F.col("value").cast("double")
    stats = (
        rows.groupBy("source")
        .agg(
            F.count(value).alias("rows"),
            F.avg(value).alias("mean"),
            F.stddev_samp(value).alias("std"),
        )
        .where(F.col("rows") >= MIN_ROWS_FOR_DISTRIBUTION)
    )
    history = profile.select("source", "history_mean", "history_std")
    joined = stats.join(F.broadcast(history), on="source", how="left")
    constant = F.col("history_std") == 0
    shift = F.when(
        constant,
        F.when(F.col("mean") == F.col("history_mean"), F.lit(None)).otherwise(F.lit(1e9)),
    ).otherwise(F.abs(F.col("mean") - F.col("history_mean")) / F.col("history_std"))
    spread = F.when(constant, F.lit(None)).otherwise(F.col("std") / F.col("history_std"))
    return joined.select(
        "source",
        "rows",
        "mean",
        shift.alias("mean_shift_sigmas"),
        spread.alias("spread_ratio"),
    )


def offset_reconciliation(
    raw: DataFrame,
    quarantined: DataFrame,
    topic: str,
    bounds: Mapping[int, tuple[int, int]],
) -> DataFrame:
    """Per Kafka partition of ``topic``: offsets consumed vs distinct offsets landed.

    ``bounds`` maps a Kafka partition to (earliest offset still in Kafka, offset below which
    both the raw and the quarantine query have committed). Every message in that span is either
    a valid event in the raw zone or a quarantined one, so ``landed`` must equal ``consumed``;
    ``in_both`` (a message in both places) must be 0.
    """
    from pyspark.sql import functions as F

    spark = raw.sparkSession
    spans = spark.createDataFrame(
        [(int(p), int(low), int(high)) for p, (low, high) in sorted(bounds.items())],
        "kafka_partition int, earliest long, committed long",
    )
    keys = ["kafka_partition", "kafka_offset"]

    def located(frame: DataFrame, where: str) -> DataFrame:
        return (
            frame.where(F.col("kafka_topic") == topic)
            .select(*keys)
            .distinct()
            .withColumn(where, F.lit(1))
        )

    both = located(raw, "in_raw").join(located(quarantined, "in_quarantine"), keys, "full")
    within = both.join(F.broadcast(spans), "kafka_partition").where(
        (F.col("kafka_offset") >= F.col("earliest")) & (F.col("kafka_offset") < F.col("committed"))
    )
    counts = within.groupBy("kafka_partition").agg(
        F.count(F.lit(1)).alias("landed"),
        F.count_if(F.col("in_raw").isNotNull() & F.col("in_quarantine").isNotNull()).alias(
            "in_both"
        ),
    )
    return (
        spans.join(counts, "kafka_partition", "left")
        .select(
            F.lit(topic).alias("kafka_topic"),
            "kafka_partition",
            (F.col("committed") - F.col("earliest")).alias("consumed"),
            F.coalesce(F.col("landed"), F.lit(0)).cast("long").alias("landed"),
            F.coalesce(F.col("in_both"), F.lit(0)).cast("long").alias("in_both"),
        )
        .orderBy("kafka_partition")
    )
