"""Named analyses: the questions operators ask every day, as Spark SQL files over the lake.

Each ``queries/<name>.sql`` starts with comment lines: what it answers, then one
``-- param: <name> <date|int> [default]`` line per parameter, used in the SQL as a named
marker (``:day``). Parameters without a default are required. ``lakepulse sql --query <name>``
runs one; the daily report (lakepulse.reports) runs them all with one Spark session.

Tables that have no data yet (the ``predictions`` table before a model writes it, the
quality results before the first validation) give an empty result that names them, instead of
an error: a fresh deployment still gets its report.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any, TextIO

from lakepulse.lake import LakeTable, _read, _utc_rows, register_tables
from lakepulse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

QUERIES_PACKAGE = "lakepulse.analysis"
QUERIES_FOLDER = "queries"
_PARAM = re.compile(r"^--\s*param:\s*(\w+)\s+(date|int)(?:\s+(\S+))?\s*$")
_RELATION = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_]\w*)", re.IGNORECASE)
_CTE = re.compile(r"(?:\bWITH|,)\s*([A-Za-z_]\w*)\s+AS\s*\(", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*")

# Views the analyses need beyond lake.TABLES: status records that are files, not lake tables.
EXTRA_VIEWS: dict[str, LakeTable] = {
    # lakepulse.streaming_status.record_restart: one JSON file per start or stop of the job.
    "pipeline_restarts": LakeTable(
        lambda settings: settings.hdfs.lake_path("_status", "restarts"), "json"
    ),
}


class QueryError(ValueError):
    """An unknown query or a bad parameter."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "date" or "int"
    default: str | None

    def parse(self, raw: Any) -> dt.date | int:
        if self.kind == "date":
            if isinstance(raw, dt.date):
                return raw
            try:
                return dt.date.fromisoformat(str(raw))
            except ValueError as exc:
                raise QueryError(
                    f"parameter {self.name}: not a date (YYYY-MM-DD): {raw!r}"
                ) from exc
        try:
            return int(raw)
        except (TypeError, ValueError) as exc:
            raise QueryError(f"parameter {self.name}: not an integer: {raw!r}") from exc


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    params: tuple[Param, ...]
    sql: str

    @property
    def tables(self) -> list[str]:
        """The tables and views it reads (FROM and JOIN targets that are not its own CTEs)."""
        own = set(_CTE.findall(self.sql))
        found = dict.fromkeys(_RELATION.findall(_COMMENT.sub("", self.sql)))
        return [name for name in found if name not in own]

    def bind(self, given: dict[str, Any]) -> dict[str, dt.date | int]:
        """Parameter values for Spark: the given ones, else defaults; refuses unknown ones."""
        known = {p.name: p for p in self.params}
        unknown = set(given) - set(known)
        if unknown:
            raise QueryError(
                f"query {self.name} has no parameter {', '.join(sorted(unknown))}; "
                f"it takes: {', '.join(known) or 'none'}"
            )
        values = {}
        for param in self.params:
            raw = given.get(param.name, param.default)
            if raw is None:
                raise QueryError(f"query {self.name} needs --param {param.name}=<{param.kind}>")
            values[param.name] = param.parse(raw)
        return values


@dataclass
class QueryResult:
    name: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    params: dict[str, Any] = field(default_factory=dict)
    # Tables the query needs that have no data yet: the result is then empty.
    missing: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": self.columns,
            "rows": [[_json_value(v) for v in row] for row in self.rows],
            "params": {k: _json_value(v) for k, v in self.params.items()},
            "missing": self.missing,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueryResult:
        return cls(
            name=data["name"],
            columns=list(data["columns"]),
            rows=[tuple(row) for row in data["rows"]],
            params=dict(data["params"]),
            missing=list(data["missing"]),
        )


def _json_value(value: Any) -> Any:
    """JSON-safe and stable: instants as ISO strings in UTC, decimals as floats."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def parse_query(name: str, text: str) -> NamedQuery:
    description, params = [], []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        match = _PARAM.match(line)
        if match:
            params.append(Param(match[1], match[2], match[3]))
        else:
            description.append(line.lstrip("-").strip())
    return NamedQuery(name, " ".join(description), tuple(params), text)


def query_names() -> list[str]:
    folder = resources.files(QUERIES_PACKAGE) / QUERIES_FOLDER
    return sorted(p.name.removesuffix(".sql") for p in folder.iterdir() if p.name.endswith(".sql"))


def load_query(name: str) -> NamedQuery:
    if name not in query_names():
        raise QueryError(f"no query named {name!r}; known: {', '.join(query_names())}")
    path = resources.files(QUERIES_PACKAGE) / QUERIES_FOLDER / f"{name}.sql"
    return parse_query(name, path.read_text(encoding="utf-8"))


def register_views(spark: SparkSession, settings: Settings) -> list[str]:
    """The lake's tables and :data:`EXTRA_VIEWS` as temporary views (those with data)."""
    registered = register_tables(spark, settings)
    for name, table in EXTRA_VIEWS.items():
        frame = _read(spark, table, table.path(settings))
        if frame is not None:
            frame.createOrReplaceTempView(name)
            registered.append(name)
    return registered


def run_query(
    spark: SparkSession, query: NamedQuery, params: dict[str, Any] | None = None
) -> QueryResult:
    """Run ``query`` on views already registered (:func:`register_views`)."""
    from pyspark.errors import AnalysisException

    values = query.bind(params or {})
    # Checked up front: Spark would log a long stack trace for each missing table otherwise.
    absent = [name for name in query.tables if not spark.catalog.tableExists(name)]
    if absent:
        return QueryResult(query.name, [], [], values, missing=absent)
    try:
        frame = spark.sql(query.sql, args=values)
    except AnalysisException as exc:
        if exc.getCondition() == "TABLE_OR_VIEW_NOT_FOUND":
            relation = exc.getMessageParameters().get("relationName", "?").strip("`")
            return QueryResult(query.name, [], [], values, missing=[relation])
        raise
    return QueryResult(query.name, frame.columns, _utc_rows(frame, frame.collect()), values)


def run_named(
    settings: Settings,
    name: str,
    params: dict[str, Any] | None = None,
    *,
    spark: SparkSession | None = None,
) -> QueryResult:
    """Run the named query over the lake; without ``spark`` a session is started and stopped."""
    query = load_query(name)
    query.bind(params or {})  # refuse bad parameters before Spark starts (~20 s)
    own_session = spark is None
    if spark is None:
        from lakepulse.spark_session import build_spark

        spark = build_spark(settings, f"lakepulse-query-{name}")
    try:
        register_views(spark, settings)
        return run_query(spark, query, params)
    finally:
        if own_session:
            spark.stop()


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``["day=2026-11-25", "days=7"]`` -> a dict; refuses items without ``=``."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise QueryError(f"--param takes NAME=VALUE, got {pair!r}")
        params[key.strip()] = value.strip()
    return params


def named_query_command(
    settings: Settings, name: str, pairs: list[str], output: TextIO = sys.stdout
) -> int:
    """`lakepulse sql --query <name> [--param k=v ...]`: print the result; the exit code."""
    from pyspark.errors import PySparkException

    from lakepulse.lake import format_table

    try:
        result = run_named(settings, name, parse_params(pairs))
    except (QueryError, PySparkException) as exc:
        print(f"lakepulse sql: {exc}", file=sys.stderr)
        return 1
    shown = ", ".join(f"{k}={_json_value(v)}" for k, v in result.params.items())
    if result.missing:
        output.write(f"{name} ({shown}): no data yet, table {', '.join(result.missing)} "
                     "does not exist\n")  # fmt: skip
        return 0
    output.write(f"{name} ({shown})\n")
    output.write(format_table(result.columns, result.rows) + "\n")
    output.write(f"({len(result.rows)} row{'' if len(result.rows) == 1 else 's'})\n")
    return 0


def list_queries_command(output: TextIO = sys.stdout) -> int:
    for name in query_names():
        query = load_query(name)
        params = " ".join(
            f"{p.name}=<{p.kind}>" if p.default is None else f"[{p.name}={p.default}]"
            for p in query.params
        )
        output.write(f"{name} {params}\n    {query.description}\n")
    return 0
