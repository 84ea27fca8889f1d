"""Live scoring: every curated event gets a forecast from the champion and an anomaly score.

A streaming query (``ml/score_events.py``) reads the raw zone as the curated query does (on
time, deduplicated within the watermark) and hands each micro-batch to :class:`BatchScorer`:

1. each source's :class:`~lakepulse.anomaly.detector.AnomalyDetector` (the detector measured
   on NAB in ``bench/nab``) scores the source's events in time order and learns them; its state
   is kept per batch in HDFS (``<lake>/ml/scoring_state/``), so a replayed batch starts from
   the same state and gives the same scores. A source seen for the first time is warmed up on
   its trusted history;
2. the champion (``models:/<registered_model>@champion``, looked up every
   ``ml.champion_poll_seconds``) forecasts each event from the features of the rows before it
   (the features it was trained on, :mod:`lakepulse.ml.features`). A newly promoted champion is
   picked up at the next batch, without a restart; every row names the version that scored it;
3. the rows go to the ``predictions`` table (idempotent per batch, like the curated tables)
   and those whose score reaches ``ml.anomaly_threshold`` to the Kafka topic ``anomalies``
   (keyed by source; at least once: a replayed batch may send an anomaly again, with the same
   ``event_id``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakepulse.anomaly.detector import AnomalyDetector
from lakepulse.anomaly.features import FEATURE_NAMES, feature_row, rows_needed
from lakepulse.log import get_logger
from lakepulse.ml.features import period_rows
from lakepulse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger("score_events")

SCORE_QUERY = "score_events"
SCORING_JOB = "score_events"  # its heartbeat: <status_path>/score_events.json
BAND_SPREADS = 2.0  # half-width of the forecast band, in robust residual spreads
WARMUP_ROWS = 3000  # history a new source's detector learns before scoring live events
PREDICTION_COLUMNS = (
    "event_id string, source string, event_time timestamp, value double, forecast double, "
    "forecast_lower double, forecast_upper double, anomaly_score double, is_anomaly boolean, "
    "model_name string, model_version string, scored_at timestamp, event_date date"
)


def predictions_path(settings: Settings) -> str:
    return settings.hdfs.lake_path("ml", "predictions")


def state_dir(settings: Settings) -> str:
    return settings.hdfs.lake_root.rstrip("/") + "/ml/scoring_state"


@dataclass
class Champion:
    version: str
    model: Any
    stats: Any  # DataFrame: source, mean, std


class ChampionWatcher:
    """The current champion, looked up at most every ``poll_seconds``."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        import mlflow

        mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
        self.spark = spark
        self.settings = settings
        self.champion: Champion | None = None
        self._checked = -math.inf

    def current(self) -> Champion | None:
        from lakepulse.ml.registry import CHAMPION, alias_version, load_version

        if time.monotonic() - self._checked < self.settings.ml.champion_poll_seconds:
            return self.champion
        self._checked = time.monotonic()
        try:
            version = alias_version(self.settings.ml.registered_model, CHAMPION)
        except Exception as exc:  # MLflow away: keep scoring with what we have
            log.warning("cannot look up the champion; keeping the current one", error=str(exc))
            return self.champion
        if version is None or (self.champion and self.champion.version == version.version):
            return self.champion
        model, stats = load_version(self.spark, version)
        previous = self.champion.version if self.champion else None
        self.champion = Champion(version.version, model, stats.cache())
        log.info("champion loaded", version=version.version, previous=previous)
        return self.champion


class DetectorStates:
    """Per-source detector states, one compressed JSON file per batch in HDFS."""

    def __init__(self, settings: Settings) -> None:
        from lakepulse.webhdfs import WebHdfs

        self.client = WebHdfs(settings.hdfs, timeout=60.0)
        self.folder = state_dir(settings)

    def _batches(self) -> list[int]:
        from lakepulse.webhdfs import WebHdfsError

        try:
            entries = self.client.list(self.folder)
        except WebHdfsError as exc:
            if exc.status == 404:
                return []
            raise
        names = (e["pathSuffix"] for e in entries)
        return sorted(
            int(n[6:18]) for n in names if n.startswith("batch-") and n.endswith(".json.z")
        )

    def load(self, before: int) -> dict[str, AnomalyDetector]:
        """The states after the newest batch below ``before`` (empty before the first)."""
        earlier = [b for b in self._batches() if b < before]
        if not earlier:
            return {}
        data = json.loads(zlib.decompress(self.client.read_bytes(self._path(earlier[-1]))))
        return {source: AnomalyDetector.from_dict(state) for source, state in data.items()}

    def save(self, batch_id: int, detectors: dict[str, AnomalyDetector]) -> None:
        import orjson

        data = orjson.dumps({s: d.to_dict() for s, d in detectors.items()},
                            option=orjson.OPT_SERIALIZE_NUMPY)  # fmt: skip
        self.client.write_bytes(self._path(batch_id), zlib.compress(data, 3))
        for old in self._batches()[:-3]:  # a replay needs the previous batch's; keep a few
            self.client.delete(self._path(old))

    def _path(self, batch_id: int) -> str:
        return f"{self.folder}/batch-{batch_id:012d}.json.z"


def warm_up(
    spark: SparkSession, settings: Settings, sources: list[str]
) -> dict[str, AnomalyDetector]:
    """Detectors for ``sources``, each having learned its last trusted rows (if any)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lakepulse.quality.verdicts import read_trusted

    detectors = {source: AnomalyDetector() for source in sources}
    history = read_trusted(spark, settings, "events")
    if history is None or not sources:
        return detectors
    latest = Window.partitionBy("source").orderBy(F.col("event_time").desc())
    rows = (
        history.where(F.col("source").isin(sources))
        .withColumn("_n", F.row_number().over(latest))
        .where(F.col("_n") <= WARMUP_ROWS)
        .select("source", "event_time", "value")
        .orderBy("source", "event_time")
        .toPandas()
    )
    for source, part in rows.groupby("source"):
        detector = detectors[source]
        for moment, value in zip(part["event_time"], part["value"], strict=True):
            detector.learn_one(moment.to_pydatetime(), None if value != value else float(value))
    log.info("detectors warmed up", sources=len(sources), rows=len(rows))
    return detectors


class BatchScorer:
    """foreachBatch function of the scoring query (see the module doc)."""

    def __init__(self, spark: SparkSession, settings: Settings, run_token: str) -> None:
        self.spark = spark
        self.settings = settings
        self.run_token = run_token
        self.champions = ChampionWatcher(spark, settings)
        self.states = DetectorStates(settings)
        self._producer: Any = None

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows = (batch.select("event_id", "source", "event_time", "value", "event_date")
                .orderBy("source", "event_time", "event_id").toPandas())  # fmt: skip
        if rows.empty:
            return
        champion = self.champions.current()
        if champion is None:
            # Failing the batch keeps its events for a later attempt: no prediction is ever
            # written without the version of the model that made it.
            raise RuntimeError(
                f"no champion of {self.settings.ml.registered_model!r} could be loaded from "
                f"MLflow at {self.settings.mlflow.tracking_uri}; the batch is retried when the "
                "scoring job restarts (scoring_supervisor waits for a champion)"
            )
        detectors = self.states.load(batch_id)
        new = sorted(set(rows["source"]) - set(detectors))
        if new:
            detectors.update(warm_up(self.spark, self.settings, new))
        scores, spreads, features = [], [], []
        for source, part in rows.groupby("source", sort=False):
            detector = detectors[source]
            for event_id, moment, value in zip(part["event_id"], part["event_time"], part["value"],
                                               strict=True):  # fmt: skip
                when = moment.to_pydatetime()
                value = None if value != value else float(value)
                row = self._features(detector, when)
                if row is not None:
                    features.append((event_id, source, *row))
                spreads.append(detector.scale if detector.model is not None else None)
                scores.append(detector.score_one(when, value))
                detector.learn_one(when, value)
        rows["anomaly_score"] = scores
        rows["forecast"] = rows["event_id"].map(self._forecasts(champion, features))
        # The band: the forecast +- BAND_SPREADS robust spreads of the source's recent forecast
        # residuals (the detector's), where both are known.
        import pandas as pd

        band = pd.Series(spreads, index=rows.index, dtype="float64") * BAND_SPREADS
        rows["forecast_lower"] = rows["forecast"] - band
        rows["forecast_upper"] = rows["forecast"] + band
        threshold = self.settings.ml.anomaly_threshold
        rows["is_anomaly"] = rows["anomaly_score"] >= threshold
        rows["model_name"] = self.settings.ml.registered_model
        rows["model_version"] = champion.version
        rows["scored_at"] = dt.datetime.now(dt.UTC)
        self._publish(rows, batch_id)
        self._send_anomalies(rows[rows["is_anomaly"]])
        self.states.save(batch_id, detectors)
        log.info("batch scored", batch_id=batch_id, events=len(rows),
                 anomalies=int(rows["is_anomaly"].sum()),
                 model_version=champion.version)  # fmt: skip

    @staticmethod
    def _features(detector: AnomalyDetector, when: dt.datetime) -> list[float] | None:
        if len(detector.values) < 3:
            return None
        period = detector.day_rows or period_rows(detector.epochs)
        if len(detector.values) < rows_needed(period):
            return None
        return feature_row(detector.values, when.timestamp(), period)

    def _forecasts(self, champion: Champion | None, features: list[tuple]) -> dict[str, float]:
        from lakepulse.ml.training import forecast

        if champion is None or not features:
            return {}
        schema = ", ".join(["event_id string", "source string",
                            *(f"{name} double" for name in FEATURE_NAMES)])  # fmt: skip
        frame = self.spark.createDataFrame(features, schema)
        found = forecast(champion.model, frame, champion.stats).select("event_id", "forecast")
        return {row[0]: row[1] for row in found.collect()}

    def _publish(self, rows: Any, batch_id: int) -> None:
        from lakepulse.streaming.batch_output import publish_batch

        frame = self.spark.createDataFrame(
            rows[[c.split()[0] for c in PREDICTION_COLUMNS.split(", ")]], PREDICTION_COLUMNS
        )
        publish_batch(frame, predictions_path(self.settings), run=self.run_token,
                      batch_id=batch_id, partition_by=["event_date"],
                      sort_by=["source", "event_time"])  # fmt: skip

    def _send_anomalies(self, anomalies: Any) -> None:
        if anomalies.empty:
            return
        from confluent_kafka import Producer

        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self.settings.kafka.bootstrap_servers,
                                       "enable.idempotence": True, "acks": "all"})  # fmt: skip
        for row in anomalies.itertuples(index=False):
            message = {
                "event_id": row.event_id,
                "source": row.source,
                "event_time": row.event_time.isoformat(),
                "value": row.value,
                "forecast": None if row.forecast != row.forecast else row.forecast,
                "anomaly_score": row.anomaly_score,
                "threshold": self.settings.ml.anomaly_threshold,
                "model_name": row.model_name,
                "model_version": row.model_version,
            }
            self._producer.produce(self.settings.ml.anomalies_topic, json.dumps(message),
                                   key=row.source)  # fmt: skip
        if self._producer.flush(30) > 0:
            raise RuntimeError(
                "anomalies not delivered to Kafka within 30 s; the batch will be retried"
            )
