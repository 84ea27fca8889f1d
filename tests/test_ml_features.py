"""Forecasting features, time split, scaling and the models on small frames (local Spark)."""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lakepulse.anomaly.features import FEATURE_NAMES, feature_row
from lakepulse.ml.features import build_features, scale, source_stats, split_by_time
from lakepulse.ml.training import TrainingConfig, evaluate, forecast, make_pipeline
from lakepulse.settings import HdfsSettings, PathSettings, Settings, SparkSettings

pytestmark = pytest.mark.ml

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)  # a Monday
STEP = dt.timedelta(minutes=5)
DAYS = 4


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lakepulse.spark_session import build_spark

    root: Path = tmp_path_factory.mktemp("ml")
    settings = Settings(
        paths=PathSettings(data_dir=root / "data", jars_dir=root / "no-jars"),
        hdfs=HdfsSettings(fs_uri_override="file://", lake_root=str(root / "lake")),
        spark=SparkSettings(master="local[2]", shuffle_partitions=2),
    )
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = build_spark(settings, "test_ml_features")
    yield session
    session.stop()


def daily_series(source: str, level: float, noise: float, seed: int) -> list[tuple]:
    """A daily cycle with noise, every 5 minutes, and a missing value now and then."""
    rng = random.Random(seed)
    rows = []
    for n in range(DAYS * 288):
        when = START + n * STEP
        value = level + 10 * math.sin(2 * math.pi * n / 288) + rng.gauss(0, noise)
        rows.append((source, when, None if n % 97 == 50 else value))
    return rows


@pytest.fixture(scope="module")
def events(spark: Any) -> Any:
    rows = daily_series("a", 100.0, 1.0, 1) + daily_series("b", 5_000.0, 1.0, 2)
    return spark.createDataFrame(rows, "source string, event_time timestamp, value double")


def test_features_are_the_detectors_own_and_see_only_the_past(events: Any) -> None:
    features = build_features(events).where("source = 'a'").orderBy("event_time").toPandas()
    history = [r for r in daily_series("a", 100.0, 1.0, 1) if r[2] is not None]
    values = [v for _, _, v in history]
    assert set(features["period"]) == {288}  # rows per day from the 5-minute spacing
    first = int(features["row_index"].iloc[0])
    assert first == len(values) - len(features)
    for i in (0, 100, len(features) - 1):
        index = int(features["row_index"].iloc[i])
        expected = feature_row(values[:index], history[index][1].timestamp(), 288)
        assert np.allclose(features.loc[i, list(FEATURE_NAMES)].to_numpy(float), expected)
        assert features["value"].iloc[i] == values[index]  # the target is the row itself
        assert features["lag_1"].iloc[i] == values[index - 1]
        assert features["seasonal_naive"].iloc[i] == values[index - 288]


def test_the_split_is_by_time_per_source_never_shuffled(events: Any) -> None:
    split = split_by_time(build_features(events), 0.25).toPandas()
    for _, rows in split.groupby("source"):
        train, test = rows[rows.split == "train"], rows[rows.split == "test"]
        assert train["event_time"].max() < test["event_time"].min()
        assert abs(len(test) / len(rows) - 0.25) < 0.01


def test_scaling_uses_each_sources_training_rows(events: Any) -> None:
    split = split_by_time(build_features(events))
    stats = {r.source: (r.mean, r.std) for r in source_stats(split).collect()}
    assert stats["b"][0] == pytest.approx(5_000, abs=2) and stats["a"][0] == pytest.approx(
        100, abs=2
    )
    scaled = scale(split, source_stats(split)).where("split = 'train'").groupBy("source")
    for row in scaled.agg({"value_z": "avg"}).collect():
        assert abs(row[1]) < 1e-9


@pytest.mark.parametrize("kind", ["linear_regression", "gbt"])
def test_models_beat_seasonal_naive_on_a_noisy_daily_cycle(events: Any, kind: str) -> None:
    config = TrainingConfig(gbt_max_iter=10)
    split = split_by_time(build_features(events), config.test_fraction).cache()
    stats = source_stats(split).cache()
    model = make_pipeline(kind, config).fit(scale(split.where("split = 'train'"), stats))
    metrics = evaluate(forecast(model, split, stats), stats)
    assert metrics["test_rows"] > 300
    assert metrics["naive_mae"] > 0 and metrics["mase"] == pytest.approx(
        metrics["mae"] / metrics["naive_mae"]
    )
    # Noise of 1 on a spread of ~7: "same as yesterday" errs by ~1.13 noise, lags do better.
    assert metrics["mase"] < 1.0, metrics
