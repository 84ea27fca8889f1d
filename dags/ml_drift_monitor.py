"""ml_drift_monitor: every 30 minutes, measure how far live data has drifted from what the
champion was trained on (lakepulse.ml.drift); above `ml.drift_threshold` it updates the asset
`lakepulse_drift`, which starts `ml_retrain`. The measurements are charted in MLflow (run
"drift monitor", metric `drift`) and kept in the `ml_drift` table.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, dag, task

from operators.lakepulse_spark import LakepulseSparkSubmitOperator

DRIFT = Asset(name="lakepulse_drift", uri="lakepulse://ml/drift")


@dag(
    schedule="*/30 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["lakepulse", "ml"],
    doc_md=__doc__,
)
def ml_drift_monitor():
    measure = LakepulseSparkSubmitOperator(
        task_id="measure_drift",
        folder="ml",
        script="drift_check.py",
        application_args=["--run-id", "{{ run_id }}"],
    )

    @task(outlets=[DRIFT])
    def signal_drift(run_id: str | None = None, outlet_events=None) -> dict:
        """Update the drift asset (retraining) only when the drift is over the threshold."""
        import datetime as dt
        import json

        from airflow.sdk.exceptions import AirflowSkipException

        from lakepulse.settings import get_settings
        from lakepulse.webhdfs import WebHdfs

        settings = get_settings()
        path = (f"{settings.hdfs.lake_root.rstrip('/')}/ml/drift/"
                f"measured_date={dt.datetime.now(dt.UTC).date()}/")  # fmt: skip
        client = WebHdfs(settings.hdfs)
        safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in run_id)
        result = json.loads(client.read_text(f"{path}{safe}.json"))
        if not result.get("over_threshold"):
            raise AirflowSkipException(f"drift {result.get('drift')} within the threshold")
        outlet_events[DRIFT].extra = {"drift": result["drift"]}
        return result

    measure >> signal_drift()


ml_drift_monitor()
