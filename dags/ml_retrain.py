"""ml_retrain: retrain the forecasters on trusted history; promote only a better model.

Runs daily (03:00 UTC), on demand with parameters, and when `ml_drift_monitor` finds that the
live data has drifted (the asset `lakepulse_drift`). The Spark job (`ml/train.py`) reads the
curated events that passed data quality, trains a linear-regression baseline and gradient-
boosted trees, logs each to MLflow (parameters; MAE, RMSE and MASE against seasonal-naive;
lake snapshot; data-quality verdicts; charts; the model), registers the best as `challenger`
and moves `champion` to it only when it beats the champion on the same test split. Live
scoring picks up a new champion by itself.

On demand, e.g. with
`{"conf": {"models": ["gbt"], "test_fraction": 0.25, "sources": [], "reason": "manual"}}`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag

from operators.lakepulse_spark import LakepulseSparkSubmitOperator

DRIFT = Asset(name="lakepulse_drift", uri="lakepulse://ml/drift")


@dag(
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * *", timezone="UTC"), assets=DRIFT
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "models": Param(
            ["linear_regression", "gbt"],
            type="array",
            items={"type": "string"},
            description="model kinds to train: linear_regression, gbt",
        ),
        "test_fraction": Param(
            0.2,
            type="number",
            minimum=0.05,
            maximum=0.5,
            description="each source's last share of rows held out",
        ),
        "sources": Param(
            [],
            type="array",
            items={"type": "string"},
            description="only these sources (empty: all)",
        ),
        "reason": Param("scheduled", type="string", description="kept as a tag on the run"),
    },
    tags=["lakepulse", "ml"],
    doc_md=__doc__,
)
def ml_retrain():
    LakepulseSparkSubmitOperator(
        task_id="train_evaluate_promote",
        folder="ml",
        script="train.py",
        application_args=[
            "--run-id",
            "{{ run_id }}",
            "--models",
            "{{ params.models | join(',') }}",
            "--test-fraction",
            "{{ params.test_fraction }}",
            "--sources",
            "{{ params.sources | join(',') }}",
            "--reason",
            "{{ 'drift' if dag_run.run_type == 'asset_triggered' else params.reason }}",
        ],
    )


ml_retrain()
