"""Kafka records -> raw events and quarantined records (event contract v1).

Pure DataFrame functions: no reads, no writes and no Python UDFs. Everything is a Spark SQL
expression, so the same code runs in batch and in streaming, and executors never need the
lakepulse package. The field names and types come from :mod:`lakepulse.events`.

Every record gets exactly one outcome: ``parse_error`` is null (a valid event) or the first
rule it breaks, so ``valid_events`` and ``invalid_events`` split the input without loss.
``dead_letters`` turns quarantine rows into the messages published to the dead-letter topic.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakepulse.events import (
    EVENT_FIELDS,
    EVENT_JSON_SCHEMA,
    FIELD_NAMES,
    SCHEMA_VERSION,
    SPARK_EVENT_TIME_FORMAT,
)

RAW_PARTITION_COLUMN = "event_date"
# The raw zone is partitioned by the event's UTC date, then its UTC hour (0-23).
RAW_PARTITION_COLUMNS = (RAW_PARTITION_COLUMN, "event_hour")
QUARANTINE_PARTITION_COLUMN = "quarantine_date"
# Optional contract field (a rebased replay's original timestamp); kept when the contract has it.
_SOURCE_TIME = "source_time"
_HAS_SOURCE_TIME = _SOURCE_TIME in FIELD_NAMES

_SPARK_TYPES: dict[str, T.DataType] = {
    "INT": T.IntegerType(),
    "STRING": T.StringType(),
    "DOUBLE": T.DoubleType(),
    "BOOLEAN": T.BooleanType(),
}
# The contract's own regex (Z suffix, seconds or milliseconds), as a Java-compatible pattern.
_EVENT_TIME_PATTERN: str = EVENT_JSON_SCHEMA["properties"]["event_time"]["pattern"]
_CORRUPT = "_corrupt_record"


def event_schema() -> T.StructType:
    """The event as it is on the wire: ``event_time`` is still the ISO-8601 string."""
    return T.StructType(
        [T.StructField(f.name, _SPARK_TYPES[f.spark_type], f.nullable) for f in EVENT_FIELDS]
    )


def utc_date(ts: Column) -> Column:
    """The UTC date of a timestamp, whatever ``spark.sql.session.timeZone`` is."""
    # Whole days since the epoch.
    return F.date_from_unix_date(F.floor(F.unix_seconds(ts) / 86_400).cast("int"))


def utc_hour(ts: Column) -> Column:
    """The UTC hour (0-23) of a timestamp, whatever the session time zone is."""
    return F.pmod(F.floor(F.unix_seconds(ts) / 3_600), F.lit(24)).cast("int")


def _contract_time(text: Column) -> Column:
    return F.try_to_timestamp(text, F.lit(SPARK_EVENT_TIME_FORMAT))


def _empty(text: Column) -> Column:
    # Null or "": the contract needs a non-empty string (as lakepulse.events does).
    return F.coalesce(F.length(text) == 0, F.lit(True))


def _parse_error(text: Column, event: Column, event_time: Column) -> Column:
    """The first contract rule a record breaks, or null.

    Spark's JSON reader nulls a field whose JSON type does not fit and flags the record in
    ``_corrupt_record``; the extra look-ups (``try_parse_json``, ``json_object_keys``,
    ``get_json_object``) only run for such rows because CASE WHEN and AND short-circuit.
    Known leniency: a JSON number in ``event_id``/``source`` is read as its text.
    """
    corrupt = event[_CORRUPT].isNotNull()

    def present(name: str) -> Column:
        return F.array_contains(F.json_object_keys(text), name)

    def given(name: str) -> Column:  # present and not JSON null
        return F.get_json_object(text, f"$.{name}").isNotNull()

    version = event["schema_version"]
    value = event["value"]
    return (
        F.when(_empty(text), "empty message")
        .when(~F.is_valid_utf8(text), "not valid UTF-8")
        .when(event.isNull() | (corrupt & F.try_parse_json(text).isNull()), "not valid JSON")
        .when(corrupt & ~F.ltrim(text).startswith("{"), "not a JSON object")
        .when(version.isNull() & ~present("schema_version"), "missing schema_version")
        .when(version.isNull(), "schema_version is not an integer")
        .when(
            version != SCHEMA_VERSION,
            F.concat(F.lit("unsupported schema_version "), version.cast("string")),
        )
        .when(_empty(event["event_id"]), "missing event_id")
        .when(_empty(event["source"]), "missing source")
        .when(event["event_time"].isNull(), "missing event_time")
        .when(
            ~event["event_time"].rlike(_EVENT_TIME_PATTERN) | event_time.isNull(),
            "event_time is not an ISO-8601 timestamp",
        )
        .when(value.isNull() & given("value"), "value is not a number")
        .when(value.isNull() & ~present("value"), "missing value")
        .when(F.isnan(value) | (F.abs(value) == float("inf")), "value is not a finite number")
        .when(event["is_anomaly"].isNull() & given("is_anomaly"), "is_anomaly is not a boolean")
        .when(_bad_source_time(event), "source_time is not an ISO-8601 timestamp")
        # Safety net: never let a record the JSON reader flagged pass as valid.
        .when(corrupt, "malformed event")
    )


def _bad_source_time(event: Column) -> Column:
    if not _HAS_SOURCE_TIME:
        return F.lit(False)
    text = event[_SOURCE_TIME]
    return text.isNotNull() & (~text.rlike(_EVENT_TIME_PATTERN) | _contract_time(text).isNull())


def parse_kafka_records(records: DataFrame) -> DataFrame:
    """Kafka's columns plus ``event`` (typed struct, ``event_time`` a timestamp) and
    ``parse_error`` (null when the record is a valid v1 event, otherwise a human reason)."""
    # All nullable: a missing field must be a reason below, not a reader error.
    parse_schema = T.StructType(
        [T.StructField(f.name, f.dataType) for f in event_schema().fields]
        + [T.StructField(_CORRUPT, T.StringType())]
    )
    options = {"columnNameOfCorruptRecord": _CORRUPT}
    # One from_json per record: the optimizer does not inline an expensive expression into
    # its several uses, so staging it in a column keeps it at one parse.
    staged = (
        records.withColumn("_text", F.col("value").cast("string"))
        .withColumn("_json", F.from_json("_text", parse_schema, options))
        .withColumn(
            "_event_time",
            _contract_time(F.col("_json.event_time")),
        )
    )
    parsed_json = F.col("_json")
    event = F.struct(
        *[
            F.col("_event_time").alias(f.name) if f.name == "event_time" else parsed_json[f.name]
            for f in EVENT_FIELDS
        ]
    )
    error = _parse_error(F.col("_text"), parsed_json, F.col("_event_time"))
    return staged.select(*records.columns, event.alias("event"), error.alias("parse_error"))


def _kafka_columns() -> list[Column]:
    return [
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
    ]


def valid_events(parsed: DataFrame) -> DataFrame:
    """Rows of the raw events table, partitioned by ``event_date`` and ``event_hour`` (UTC).

    ``ingested_at`` is Spark's batch timestamp in a streaming query: one value per micro-batch,
    recorded in the checkpoint, so a replayed batch gets the same value again.
    """
    event = F.col("event")
    source_time = (
        [_contract_time(event[_SOURCE_TIME]).alias(_SOURCE_TIME)] if _HAS_SOURCE_TIME else []
    )
    return parsed.where(F.col("parse_error").isNull()).select(
        event["event_id"].alias("event_id"),
        event["source"].alias("source"),
        event["event_time"].alias("event_time"),
        event["value"].alias("value"),
        event["is_anomaly"].alias("is_anomaly"),
        *source_time,
        event["schema_version"].alias("schema_version"),
        *_kafka_columns(),
        F.current_timestamp().alias("ingested_at"),
        utc_date(event["event_time"]).alias(RAW_PARTITION_COLUMNS[0]),
        utc_hour(event["event_time"]).alias(RAW_PARTITION_COLUMNS[1]),
    )


def invalid_events(parsed: DataFrame) -> DataFrame:
    """Quarantine rows: the original bytes (to replay them) and a readable copy."""
    return parsed.where(F.col("parse_error").isNotNull()).select(
        # make_valid_utf8 keeps the text printable; raw_bytes keeps it exact.
        F.make_valid_utf8(F.col("value").cast("string")).alias("raw_value"),
        F.col("value").alias("raw_bytes"),
        F.make_valid_utf8(F.col("key").cast("string")).alias("kafka_key"),
        F.col("key").alias("raw_key"),  # exact bytes: the dead letter is keyed by them
        F.col("parse_error").alias("reason"),
        *_kafka_columns(),
        F.current_timestamp().alias("quarantined_at"),
        utc_date(F.current_timestamp()).alias(QUARANTINE_PARTITION_COLUMN),
    )


# Dead letters carry their Kafka timestamp like the events' own times: UTC, "Z".
# Null fields are written as null (not left out): every dead letter has the same keys.
_DLQ_JSON_OPTIONS = {
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
    "timeZone": "UTC",
    "ignoreNullFields": "false",
}


def dead_letters(quarantined: DataFrame) -> DataFrame:
    """Quarantine rows as Kafka messages for the dead-letter topic: ``key`` and ``value``.

    The value is JSON ``{reason, topic, partition, offset, kafka_timestamp, value_base64}``
    (``value_base64`` null for a null message), keyed by the original message's key bytes.
    Quarantine rows written before ``raw_key`` existed fall back to the key's text.
    """
    body = F.struct(
        F.col("reason"),
        F.col("kafka_topic").alias("topic"),
        F.col("kafka_partition").alias("partition"),
        F.col("kafka_offset").alias("offset"),
        F.col("kafka_timestamp"),
        F.base64(F.col("raw_bytes")).alias("value_base64"),
    )
    return quarantined.select(
        F.coalesce(F.col("raw_key"), F.col("kafka_key").cast("binary")).alias("key"),
        F.to_json(body, _DLQ_JSON_OPTIONS).alias("value"),
    )
