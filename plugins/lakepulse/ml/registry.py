"""Champion and challenger in the MLflow model registry, and the promotion rule.

The registered model ``lakepulse-forecaster`` has two aliases: ``challenger`` (the best model
of the latest retraining) and ``champion`` (the one live scoring uses). A challenger becomes
champion only when it beats the champion on the same test split: both forecast the same rows
(the retraining's test split, each with its own per-source scale) and the lower MAE wins. The
comparison is kept as tags on both versions and metrics on the retraining's run, so the MLflow
UI shows why a version was (not) promoted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MODEL_NAME = "lakepulse-forecaster"
CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Promotion:
    challenger_version: str
    champion_version: str | None  # the champion before the decision
    challenger_mae: float
    champion_mae: float | None
    promoted: bool

    @property
    def reason(self) -> str:
        if self.champion_version is None:
            return "no champion yet: the first challenger becomes champion"
        verb = "beats" if self.promoted else "does not beat"
        return (f"challenger v{self.challenger_version} (MAE {self.challenger_mae:.4f}) {verb} "
                f"champion v{self.champion_version} (MAE {self.champion_mae:.4f}) on the same "
                "test split")  # fmt: skip


def client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def alias_version(name: str, alias: str) -> Any | None:
    """The model version behind ``alias``, or None when the alias is not set."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_version(spark: SparkSession, version: Any) -> tuple[Any, DataFrame]:
    """(PipelineModel, per-source scale) of a registered version."""
    import mlflow
    import mlflow.spark

    model = mlflow.spark.load_model(f"models:/{version.name}/{version.version}")
    path = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path="source_stats.json"
    )
    with open(path) as handle:
        stats = json.load(handle)
    rows = [(source, s["mean"], s["std"]) for source, s in stats.items()]
    return model, spark.createDataFrame(rows, "source string, mean double, std double")


def decide(
    spark: SparkSession,
    split: DataFrame,
    current_stats: DataFrame,
    challenger: Any,
    challenger_model: Any,
    challenger_stats: DataFrame,
) -> Promotion:
    """Compare the challenger with the champion on ``split``'s test rows; move the aliases."""
    from lakepulse.ml.training import evaluate, forecast

    registry = client()
    registry.set_registered_model_alias(challenger.name, CHALLENGER, challenger.version)
    champion = alias_version(challenger.name, CHAMPION)
    if champion is None:
        registry.set_registered_model_alias(challenger.name, CHAMPION, challenger.version)
        mae = evaluate(forecast(challenger_model, split, challenger_stats), current_stats)["mae"]
        return Promotion(challenger.version, None, mae, None, True)
    champion_model, champion_stats = load_version(spark, champion)
    # The same rows for both: the sources both models know.
    common = challenger_stats.select("source").intersect(champion_stats.select("source"))
    rows = split.join(common, "source")
    mine = evaluate(forecast(challenger_model, rows, challenger_stats), current_stats)["mae"]
    theirs = evaluate(forecast(champion_model, rows, champion_stats), current_stats)["mae"]
    promoted = mine < theirs
    if promoted:
        registry.set_registered_model_alias(challenger.name, CHAMPION, challenger.version)
    decision = Promotion(challenger.version, champion.version, mine, theirs, promoted)
    for version in (challenger.version, champion.version):
        registry.set_model_version_tag(challenger.name, version, "lakepulse.last_comparison",
                                       decision.reason)  # fmt: skip
    return decision
