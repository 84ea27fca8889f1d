"""Every DAG imports without errors and has the tasks the platform relies on (no DB needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.platform

DAGS = Path(__file__).resolve().parents[1] / "dags"
EXPECTED_TASKS = {
    "backfill": {"check_range", "recompute_aggregates"},
    "compact_lake": {"compact_closed_partitions"},
    "daily_report": {"run_analyses", "render_and_send"},
    "data_quality": {"validate_partitions", "alert", "fail_if_quarantined"},
    "ml_retrain": {"train_evaluate_promote"},
    "ml_drift_monitor": {"measure_drift", "signal_drift"},
    "scoring_supervisor": {"wait_for_champion", "wait_until_scoring_is_down", "run_score_events"},
    "cluster_health": {"kafka", "hdfs", "streaming_job", "mlflow", "airflow"},
    "streaming_supervisor": {
        "wait_until_job_is_down",
        "run_ingest_events",
        "watch_job",
        "stop_unhealthy_job",
    },
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_TASKS))
def test_dag_has_the_expected_tasks(dagbag, dag_id):
    dag = dagbag.dags.get(dag_id)
    assert dag is not None, f"{dag_id} not found; found {sorted(dagbag.dag_ids)}"
    assert set(dag.task_ids) == EXPECTED_TASKS[dag_id]
    assert "lakepulse" in dag.tags


def test_the_supervisor_submits_the_ingest_job_through_the_spark_provider(dagbag):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    dag = dagbag.dags["streaming_supervisor"]
    submit = dag.get_task("run_ingest_events")
    assert isinstance(submit, SparkSubmitOperator)
    assert submit.application.endswith("spark/ingest_events.py")
    assert Path(submit.application).is_file()
    assert dag.max_active_runs == 1


def test_dag_files_do_no_heavy_imports_at_parse_time():
    import subprocess
    import sys

    probe = (
        "import sys, runpy\n"
        f"sys.path[:0] = [{str(DAGS.parent / 'plugins')!r}]\n"
        f"for f in {sorted(str(p) for p in DAGS.glob('*.py'))!r}: runpy.run_path(f)\n"
        "heavy = [m for m in ('pyspark.sql', 'mlflow', 'great_expectations', 'matplotlib')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"DAG files import {result.stdout.strip()} at parse time"


def test_backfill_recomputes_a_range_given_as_parameters(dagbag):
    dag = dagbag.dags["backfill"]
    assert set(dag.params) == {"start", "end"}
    submit = dag.get_task("recompute_aggregates")
    assert Path(submit.application).is_file()
    assert submit.application_args == ["--start", "{{ params.start }}", "--end", "{{ params.end }}"]


def test_data_quality_runs_on_landed_partitions_and_on_a_schedule(dagbag):
    dag = dagbag.get_dag("data_quality")
    timetable = dag.timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule"
    assert "lakepulse_landed_partitions" in str(dag.timetable.asset_condition)
    submit = dag.get_task("validate_partitions")
    assert submit.application_args[:2] == ["--run-id", "{{ run_id }}"]


def test_ml_retrain_runs_daily_on_demand_and_on_drift(dagbag):
    dag = dagbag.get_dag("ml_retrain")
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert "lakepulse_drift" in str(dag.timetable.asset_condition)
    assert set(dag.params) == {"models", "test_fraction", "sources", "reason"}
    monitor = dagbag.get_dag("ml_drift_monitor").get_task("signal_drift")
    assert [outlet.name for outlet in monitor.outlets] == ["lakepulse_drift"]
