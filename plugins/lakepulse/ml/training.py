"""Train, evaluate and record forecasting models (Spark MLlib + MLflow).

One retraining is one MLflow run (the parent) with a nested run per model kind:

- ``linear_regression``: the baseline, MLlib ``LinearRegression`` on the scaled features;
- ``gbt``: MLlib ``GBTRegressor`` on the same features.

Every model is judged on the test split against seasonal-naive (the value one day earlier):
MAE and RMSE in units of each source's spread, and MASE = MAE / seasonal-naive MAE (below 1:
better than "same as yesterday"). Each run logs its parameters, metrics, the lake snapshot it
read (table, partitions, rows per partition), the data-quality verdicts of those partitions,
charts (forecast vs actual, residuals), the per-source scale and the model (``mlflow.spark``).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakepulse.ml.features import (
    Z_FEATURES,
    build_features,
    scale,
    source_stats,
    split_by_time,
    stats_as_dict,
)

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame

MODEL_KINDS = ("linear_regression", "gbt")


@dataclass(frozen=True)
class TrainingConfig:
    models: tuple[str, ...] = MODEL_KINDS
    test_fraction: float = 0.2
    lr_reg_param: float = 0.001
    gbt_max_iter: int = 30
    gbt_max_depth: int = 5
    seed: int = 7
    chart_sources: int = 3

    def params(self) -> dict[str, Any]:
        return {k: ",".join(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class ModelResult:
    kind: str
    run_id: str
    metrics: dict[str, float]
    model: Any = field(repr=False, default=None)


def make_pipeline(kind: str, config: TrainingConfig) -> Any:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import GBTRegressor, LinearRegression

    assemble = VectorAssembler(inputCols=list(Z_FEATURES), outputCol="features",
                               handleInvalid="skip")  # fmt: skip
    if kind == "linear_regression":
        regressor = LinearRegression(labelCol="value_z", regParam=config.lr_reg_param)
    elif kind == "gbt":
        regressor = GBTRegressor(
            labelCol="value_z",
            maxIter=config.gbt_max_iter,
            maxDepth=config.gbt_max_depth,
            seed=config.seed,
        )
    else:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
    return Pipeline(stages=[assemble, regressor])


def forecast(model: PipelineModel, frame: DataFrame, stats: DataFrame) -> DataFrame:
    """``forecast`` (original units) for rows with raw features, scaled with ``stats`` (the
    model's own per-source scale); sources the model has no scale for are left out."""
    from pyspark.sql import functions as F

    derived = [c for c in frame.columns if c.endswith("_z") or c in ("mean", "std")]
    scaled = scale(frame.drop(*derived), stats)
    return model.transform(scaled).withColumn(
        "forecast", F.col("prediction") * F.col("std") + F.col("mean")
    )


def evaluate(scored: DataFrame, reference: DataFrame) -> dict[str, float]:
    """Errors on the test rows of ``scored`` (``forecast``, ``value``, ``seasonal_naive``) in
    units of each source's spread in ``reference`` (the current training scale)."""
    from pyspark.sql import functions as F

    spread = reference.select("source", F.col("std").alias("unit"))
    rows = scored.where(F.col("split") == "test").join(F.broadcast(spread), "source")
    err = (F.col("forecast") - F.col("value")) / F.col("unit")
    naive = (F.col("seasonal_naive") - F.col("value")) / F.col("unit")
    found = rows.agg(
        F.avg(F.abs(err)).alias("mae"),
        F.sqrt(F.avg(err * err)).alias("rmse"),
        F.avg(F.abs(naive)).alias("naive_mae"),
        F.sqrt(F.avg(naive * naive)).alias("naive_rmse"),
        F.count(F.lit(1)).alias("test_rows"),
    ).first()
    metrics = {k: float(found[k] or 0.0) for k in ("mae", "rmse", "naive_mae", "naive_rmse")}
    metrics["mase"] = (
        metrics["mae"] / metrics["naive_mae"] if metrics["naive_mae"] else float("inf")
    )
    metrics["test_rows"] = float(found["test_rows"])
    return metrics


def charts(scored: DataFrame, directory: Path, sources: int) -> list[Path]:
    """Forecast vs actual for a few sources (test split) and the residuals' histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pyspark.sql import functions as F

    test = scored.where(F.col("split") == "test")
    names = [
        r[0] for r in test.select("source").distinct().orderBy("source").limit(sources).collect()
    ]
    rows = (test.where(F.col("source").isin(names))
            .select("source", "event_time", "value", "forecast", "seasonal_naive")
            .orderBy("source", "event_time").toPandas())  # fmt: skip
    paths = []
    fig, axes = plt.subplots(
        len(names) or 1, 1, figsize=(11, 3 * max(len(names), 1)), squeeze=False
    )
    for ax, name in zip(axes[:, 0], names, strict=False):
        part = rows[rows["source"] == name].tail(600)
        ax.plot(part["event_time"], part["value"], color="#1f77b4", lw=1, label="actual")
        ax.plot(part["event_time"], part["forecast"], color="#d62728", lw=1, label="forecast")
        ax.plot(part["event_time"], part["seasonal_naive"], color="#7f7f7f", lw=0.8, ls=":",
                label="seasonal-naive")  # fmt: skip
        ax.set_title(f"{name}: test split (last 600 rows)")
        ax.set_ylabel("value")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    paths.append(directory / "forecast_vs_actual.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    residuals = (rows["forecast"] - rows["value"]).dropna()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(residuals, bins=60, color="#1f77b4")
    ax.set_title("Forecast residuals on the test split (charted sources)")
    ax.set_xlabel("forecast - actual (value units)")
    ax.set_ylabel("rows")
    fig.tight_layout()
    paths.append(directory / "residuals.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)
    return paths


def prepare(events: DataFrame, config: TrainingConfig) -> tuple[DataFrame, DataFrame]:
    """(split features with raw and scaled columns, per-source scale), cached."""
    split = split_by_time(build_features(events), config.test_fraction).cache()
    stats = source_stats(split).cache()
    return split, stats


def train_and_log(
    kind: str, split: DataFrame, stats: DataFrame, config: TrainingConfig, context: dict[str, Any]
) -> ModelResult:
    """Fit one model kind in a nested MLflow run; log everything about it."""
    import mlflow
    import mlflow.spark

    with mlflow.start_run(run_name=kind, nested=True) as run:
        mlflow.log_params({"model_kind": kind, **config.params()})
        mlflow.set_tags({"lakepulse.kind": kind, "lakepulse.airflow_run_id": context["run_id"]})
        train = scale(split.where("split = 'train'"), stats)
        model = make_pipeline(kind, config).fit(train)
        scored = forecast(model, split, stats).cache()
        metrics = evaluate(scored, stats)
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for path in charts(scored, folder, config.chart_sources):
                mlflow.log_artifact(str(path), "charts")
            (folder / "source_stats.json").write_text(json.dumps(stats_as_dict(stats), indent=1))
            mlflow.log_artifact(str(folder / "source_stats.json"))
            (folder / "lake_snapshot.json").write_text(json.dumps(context["snapshot"], indent=1))
            mlflow.log_artifact(str(folder / "lake_snapshot.json"))
            (folder / "data_quality.json").write_text(json.dumps(context["quality"], indent=1))
            mlflow.log_artifact(str(folder / "data_quality.json"))
        mlflow.spark.log_model(model, "model")
        scored.unpersist()
        return ModelResult(kind, run.info.run_id, metrics, model)
