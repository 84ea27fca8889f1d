"""One retraining: read trusted history, train every model kind, register the best as
challenger, promote it when it beats the champion (see :mod:`lakepulse.ml.registry`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakepulse.log import get_logger
from lakepulse.ml.registry import MODEL_NAME, decide
from lakepulse.ml.training import TrainingConfig, prepare, train_and_log
from lakepulse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger("ml_retrain")


class NothingToTrainOn(RuntimeError):
    """No partition of the curated events has passed data quality yet (or none has enough
    rows per source for features)."""


def lake_snapshot(
    client: Any, settings: Settings, events: DataFrame
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what was read: partitions and rows each; their data-quality verdicts)."""
    from lakepulse.quality.partitions import Partition
    from lakepulse.quality.verdicts import read_verdict

    rows = {r[0].isoformat(): r[1] for r in events.groupBy("event_date").count().collect()}
    snapshot = {"table": "events", "selection": "trusted partitions (passed data quality)",
                "partitions": dict(sorted(rows.items())), "rows": sum(rows.values())}  # fmt: skip
    quality = {}
    for day in sorted(rows):
        verdict = read_verdict(client, settings, Partition.parse(f"events/event_date={day}"))
        quality[day] = None if verdict is None else {
            "passed": verdict.passed, "validated_at": verdict.validated_at,
            "run_id": verdict.run_id, "expectations": verdict.expectations,
        }  # fmt: skip
    return snapshot, quality


def retrain(
    spark: SparkSession,
    settings: Settings,
    run_id: str,
    config: TrainingConfig | None = None,
    sources: list[str] | None = None,
    reason: str = "scheduled",
) -> dict[str, Any]:
    import mlflow
    from pyspark.sql import functions as F

    from lakepulse.quality.verdicts import read_trusted
    from lakepulse.webhdfs import WebHdfs

    config = config or TrainingConfig()
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_experiment(settings.mlflow.experiment)
    events = read_trusted(spark, settings, "events")
    if events is None:
        raise NothingToTrainOn(
            "no partition of `events` has passed data quality yet: run data_quality (or wait "
            "for the stream to close a day) before training"
        )
    if sources:
        events = events.where(F.col("source").isin(sources))
    snapshot, quality = lake_snapshot(WebHdfs(settings.hdfs), settings, events)
    split, stats = prepare(events, config)
    if split.limit(1).count() == 0:
        raise NothingToTrainOn(
            f"the trusted events ({snapshot['rows']} rows) give no feature row: a source needs "
            "more than a day of rows"
        )
    context = {"run_id": run_id, "snapshot": snapshot, "quality": quality}
    with mlflow.start_run(run_name=f"retrain {run_id}") as parent:
        mlflow.set_tags({"lakepulse.airflow_run_id": run_id, "lakepulse.reason": reason})
        mlflow.log_params({**config.params(), "sources": len(stats.collect())})
        mlflow.log_dict(snapshot, "lake_snapshot.json")
        mlflow.log_dict(quality, "data_quality.json")
        results = []
        for number, kind in enumerate(config.models, 1):
            log.info("training", progress=f"{number}/{len(config.models)}", kind=kind)
            results.append(train_and_log(kind, split, stats, config, context))
            log.info(
                "trained", kind=kind, **{k: round(v, 4) for k, v in results[-1].metrics.items()}
            )
        best = min(results, key=lambda r: r.metrics["mae"])
        version = mlflow.register_model(f"runs:/{best.run_id}/model", MODEL_NAME)
        decision = decide(spark, split, stats, version, best.model, stats)
        mlflow.log_metrics({
            f"{r.kind}_{name}": value for r in results for name, value in r.metrics.items()
        } | {"challenger_mae_on_split": decision.challenger_mae,
             "champion_mae_on_split": decision.champion_mae or float("nan"),
             "promoted": float(decision.promoted)})  # fmt: skip
        mlflow.set_tags({"lakepulse.challenger_version": version.version,
                         "lakepulse.decision": decision.reason})  # fmt: skip
        summary = {
            "run_id": parent.info.run_id,
            "models": {r.kind: r.metrics for r in results},
            "challenger": {"kind": best.kind, "version": version.version},
            "promoted": decision.promoted,
            "decision": decision.reason,
            "snapshot": snapshot,
        }
    split.unpersist()
    log.info("retrained", promoted=decision.promoted, decision=decision.reason)
    return summary
