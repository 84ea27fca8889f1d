"""The daily report: the named analyses of one day, charts, an HTML page and an e-mail.

``analyse`` runs the queries (Spark) into a :class:`ReportData`; ``key_numbers`` derives the
short table of numbers; ``charts.render_charts`` draws the PNGs; ``page`` builds the HTML for
the dashboard page and for the e-mail; ``daily`` ties them to the report folder
``<data_dir>/reports/<day>/``. Everything but ``analyse`` is pure and needs no Spark.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakepulse.analysis import QueryResult, load_query, register_views, run_query
from lakepulse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The analyses a report runs, in the order the page shows them.
REPORT_QUERIES = (
    "volume_by_source_hour",
    "source_series",
    "trend_by_source",
    "pipeline_lag",
    "pipeline_restarts",
    "quality_pass_rate",
    "quality_pass_rate_trend",
    "top_anomalies",
    "forecast_vs_actual",
    "prediction_series",
)


@dataclass
class ReportData:
    day: dt.date
    results: dict[str, QueryResult]

    def __getitem__(self, name: str) -> QueryResult:
        return self.results[name]

    def to_json(self) -> str:
        payload = {
            "day": self.day.isoformat(),
            "results": {name: result.to_json() for name, result in self.results.items()},
        }
        return json.dumps(payload, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReportData:
        payload = json.loads(text)
        return cls(
            dt.date.fromisoformat(payload["day"]),
            {name: QueryResult.from_json(r) for name, r in payload["results"].items()},
        )


def analyse(settings: Settings, day: dt.date, *, spark: SparkSession | None = None) -> ReportData:
    """Run every report query for ``day`` over the lake (one Spark session for all)."""
    own_session = spark is None
    if spark is None:
        from lakepulse.spark_session import build_spark

        spark = build_spark(settings, "lakepulse-daily-report")
    try:
        register_views(spark, settings)
        results = {}
        for name in REPORT_QUERIES:
            query = load_query(name)
            given = {"day": day} if any(p.name == "day" for p in query.params) else {}
            results[name] = run_query(spark, query, given)
        # JSON round trip: the report is built from exactly what is stored beside it.
        return ReportData.from_json(ReportData(day, results).to_json())
    finally:
        if own_session:
            spark.stop()


@dataclass(frozen=True)
class KeyNumber:
    label: str
    value: float | int | None  # None: no data for it yet
    unit: str
    note: str = ""

    def display(self) -> str:
        if self.value is None:
            return "—"
        if isinstance(self.value, float):
            text = f"{self.value:,.1f}" if abs(self.value) >= 10 else f"{self.value:,.2f}"
        else:
            text = f"{self.value:,}"
        return f"{text} {self.unit}".strip()


def _sum(result: QueryResult, column: str) -> int:
    return sum(int(r[column] or 0) for r in result.records())


def key_numbers(data: ReportData) -> list[KeyNumber]:
    """The few numbers an operator reads first, each derived from one query's result."""
    volume = data["volume_by_source_hour"].records()
    by_hour: dict[int, int] = {}
    for row in volume:
        by_hour[row["hour"]] = by_hour.get(row["hour"], 0) + int(row["events"])
    peak = max(by_hour.items(), key=lambda item: (item[1], -item[0]), default=None)

    quality = data["quality_pass_rate"].records()
    validations = sum(int(r["validations"]) for r in quality)
    passed = sum(int(r["passed"]) for r in quality)

    lag = data["pipeline_lag"].records()
    restarts = data["pipeline_restarts"]

    forecasts = data["forecast_vs_actual"]
    predicted = _sum(forecasts, "predictions")
    in_band = sum(float(r["in_band_pct"] or 0) * int(r["predictions"]) for r in forecasts.records())
    no_predictions = "no predictions yet" if forecasts.missing else ""

    return [
        KeyNumber("Events (curated)", _sum(data["volume_by_source_hour"], "events"), "events"),
        KeyNumber("Sources reporting", len({r["source"] for r in volume}), "sources"),
        KeyNumber(
            "Busiest hour (UTC)",
            peak[1] if peak else None,
            "events",
            f"{peak[0]:02d}:00 to {peak[0]:02d}:59" if peak else "",
        ),
        KeyNumber("Missing values", _sum(data["volume_by_source_hour"], "missing_values"), ""),
        KeyNumber(
            "Data-quality pass rate",
            round(100.0 * passed / validations, 1) if validations else None,
            "%",
            f"{passed} of {validations} validations passed" if validations else "no validations",
        ),
        KeyNumber(
            "Pipeline lag p95, worst hour",
            max((float(r["p95_lag_s"]) for r in lag), default=None),
            "s",
            "Kafka append to raw zone",
        ),
        KeyNumber("Events landed", _sum(data["pipeline_lag"], "events"), "events", "wall clock"),
        KeyNumber("Streaming job restarts", len(restarts.rows), "", "starts and stops"),
        KeyNumber(
            "Anomalies flagged",
            None if forecasts.missing else _sum(forecasts, "anomalies"),
            "",
            no_predictions,
        ),
        KeyNumber(
            "Forecast band coverage",
            round(in_band / predicted, 1) if predicted else None,
            "%",
            no_predictions or "actuals inside the forecast band",
        ),
    ]


def as_dict(numbers: list[KeyNumber]) -> dict[str, Any]:
    return {n.label: n.value for n in numbers}
