"""The lake's tables for ad-hoc SQL (``lakepulse sql "SELECT ..."``).

Tables are Spark temporary views over their lake paths. Reading a file-sink directory by its
path (not a glob) makes Spark use the sink's ``_spark_metadata`` log, so files of a batch that
was never committed are not read: queries see exactly what the streaming job committed
(``raw_events``, ``quarantined_events``). The curated and aggregate tables are written per batch
with idempotent file names (lakepulse.streaming.batch_output) and read as plain directories;
their ``_staging`` folders are hidden from readers. docs/lake-layout.md describes them all.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from lakepulse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MAX_ROWS = 1000  # what `lakepulse sql` prints at most; more rows need a LIMIT or an aggregate


class LakeError(Exception):
    """A query cannot run against the lake as it is (for example an unknown table)."""


class LakeTable(NamedTuple):
    path: Callable[[Settings], str]
    format: str


def quarantined_events_path(settings: Settings) -> str:
    return settings.hdfs.lake_path("quarantine", "events")


def curated_events_path(settings: Settings) -> str:
    return settings.hdfs.lake_path("curated", "events")


def late_events_path(settings: Settings) -> str:
    return settings.hdfs.lake_path("curated", "late_events")


def aggregate_path(settings: Settings, name: str) -> str:
    return settings.hdfs.lake_path("aggregates", name)


# The zones and their tables are described in docs/lake-layout.md.
TABLES: dict[str, LakeTable] = {
    "raw_events": LakeTable(lambda settings: settings.raw_events_path, "parquet"),
    "quarantined_events": LakeTable(quarantined_events_path, "parquet"),
    "events": LakeTable(curated_events_path, "parquet"),
    "late_events": LakeTable(late_events_path, "parquet"),
    "events_agg_1m": LakeTable(
        lambda settings: aggregate_path(settings, "events_agg_1m"), "parquet"
    ),
    "events_agg_5m": LakeTable(
        lambda settings: aggregate_path(settings, "events_agg_5m"), "parquet"
    ),
    # Live scoring (lakepulse.ml.scoring): forecasts and anomaly scores with the model version.
    "predictions": LakeTable(
        lambda settings: settings.hdfs.lake_path("ml", "predictions"), "parquet"
    ),
    # One JSON line per drift measurement (ml/drift_check.py): the drift chart's source.
    "ml_drift": LakeTable(lambda settings: settings.hdfs.lake_path("ml", "drift"), "json"),
    # One JSON line per partition validated (lakepulse.quality.verdicts): the pass rate's source.
    "quality_results": LakeTable(
        lambda settings: settings.hdfs.lake_path("_quality", "results"), "json"
    ),
}


def _read(spark: SparkSession, table: LakeTable, path: str) -> DataFrame | None:
    """The table, or None when nothing has been written there yet."""
    from pyspark.errors import AnalysisException

    try:
        return spark.read.format(table.format).load(path)
    except AnalysisException as exc:
        # UNABLE_TO_INFER_SCHEMA: the directory exists but holds no data file yet.
        if exc.getCondition() in {"PATH_NOT_FOUND", "UNABLE_TO_INFER_SCHEMA"}:
            return None
        raise


def read_table(spark: SparkSession, settings: Settings, name: str) -> DataFrame | None:
    """One of :data:`TABLES` as a DataFrame, or None when it has no data yet."""
    table = TABLES[name]
    return _read(spark, table, table.path(settings))


def register_tables(spark: SparkSession, settings: Settings) -> list[str]:
    """Create a temporary view per table that has data; returns their names."""
    registered = []
    for name, table in TABLES.items():
        frame = _read(spark, table, table.path(settings))
        if frame is not None:
            frame.createOrReplaceTempView(name)
            registered.append(name)
    return registered


def _missing_table_error(exc: Exception, registered: list[str]) -> LakeError:
    relation = exc.getMessageParameters().get("relationName", "?")  # type: ignore[attr-defined]
    empty = [name for name in TABLES if name not in registered]
    message = f"table {relation} does not exist. Tables in the lake: {', '.join(registered)}"
    if not registered:
        message = f"table {relation} does not exist: the lake has no tables with data yet"
    if empty:
        message += f" (known but not written yet: {', '.join(empty)})"
    return LakeError(message)


def _utc_rows(frame: DataFrame, rows: list[Any]) -> list[tuple[Any, ...]]:
    """Rows as tuples, timestamps as aware UTC datetimes.

    pyspark hands TIMESTAMP values back as naive datetimes in the local time zone of this
    process; the lake is UTC, so say so explicitly instead of printing host-local times.
    """
    from pyspark.sql.types import TimestampType

    instants = {
        i for i, f in enumerate(frame.schema.fields) if isinstance(f.dataType, TimestampType)
    }
    return [
        tuple(
            value.astimezone(dt.UTC) if i in instants and value is not None else value
            for i, value in enumerate(row)
        )
        for row in rows
    ]


def run_sql(
    settings: Settings,
    query: str,
    *,
    spark: SparkSession | None = None,
    max_rows: int | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one SQL statement over the lake's tables; returns (columns, rows).

    Without ``spark`` a session is started (~20 s) and stopped afterwards.
    """
    from pyspark.errors import AnalysisException

    own_session = spark is None
    if spark is None:
        from lakepulse.spark_session import build_spark

        spark = build_spark(settings, "lakepulse-sql")
    try:
        registered = register_tables(spark, settings)
        try:
            frame = spark.sql(query)
        except AnalysisException as exc:
            if exc.getCondition() == "TABLE_OR_VIEW_NOT_FOUND":
                raise _missing_table_error(exc, registered) from None
            raise
        rows = frame.collect() if max_rows is None else frame.take(max_rows)
        return frame.columns, _utc_rows(frame, rows)
    finally:
        if own_session:
            spark.stop()


def _cell(value: Any, max_width: int) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, bytes | bytearray):
        text = "0x" + bytes(value).hex()
    elif isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ").replace("+00:00", "Z")
    else:
        text = str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def format_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, max_width: int = 60
) -> str:
    """An aligned text table; numeric columns are right-aligned, long cells cut."""
    cells = [[_cell(value, max_width) for value in row] for row in rows]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(columns)]
    numeric = [
        any(row[i] is not None for row in rows)
        and all(row[i] is None or _is_number(row[i]) for row in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str], align_numbers: bool) -> str:
        parts = [
            value.rjust(width) if align_numbers and is_num else value.ljust(width)
            for value, width, is_num in zip(values, widths, numeric, strict=True)
        ]
        return " | ".join(parts).rstrip()

    header = line(list(columns), align_numbers=False)
    separator = "-+-".join("-" * width for width in widths)
    return "\n".join([header, separator, *(line(row, align_numbers=True) for row in cells)])


def sql_command(settings: Settings, query: str, output: TextIO = sys.stdout) -> int:
    """`lakepulse sql "<query>"`: print the result as a table; returns the exit code."""
    from pyspark.errors import PySparkException

    try:
        columns, rows = run_sql(settings, query, max_rows=MAX_ROWS + 1)
    except (LakeError, PySparkException) as exc:
        print(f"lakepulse sql: {exc}", file=sys.stderr)
        return 1
    output.write(format_table(columns, rows[:MAX_ROWS]) + "\n")
    if len(rows) > MAX_ROWS:
        output.write(f"(first {MAX_ROWS} rows shown; add a LIMIT or aggregate for the rest)\n")
    else:
        output.write(f"({len(rows)} row{'' if len(rows) == 1 else 's'})\n")
    return 0
