"""cluster_health and `lakepulse status` on the session's private platform: they pass when
everything runs, and name Kafka when the broker is stopped.

This file runs after the end-to-end tests (alphabetical order) because it stops the broker.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.platform, pytest.mark.integration]

DAGS = Path(__file__).resolve().parents[1] / "dags"
LAKEPULSE = str(Path(sys.executable).parent / "lakepulse")


@pytest.fixture(scope="module")
def cluster_health_dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS / "cluster_health.py")).dags["cluster_health"]


def _task_states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_status_exits_zero_when_every_service_is_healthy(job_running):
    result = subprocess.run([LAKEPULSE, "status"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for service in ("kafka", "hdfs-namenode", "hdfs-datanode", "mlflow", "airflow-scheduler",
                    "airflow-api-server", "streaming-job"):  # fmt: skip
        assert any(line.startswith("ok") and service in line for line in result.stdout.splitlines())


def test_cluster_health_passes_when_everything_runs(job_running, cluster_health_dag):
    run = cluster_health_dag.test()
    assert str(run.state) == "success", _task_states(run)
    assert set(_task_states(run).values()) == {"success"}


def test_a_stopped_broker_fails_cluster_health_naming_kafka(job_running, cluster_health_dag, capfd):
    from lakepulse.services import kafka, process

    broker = kafka.broker_spec(job_running)
    process.stop(broker)
    try:
        run = cluster_health_dag.test()
        output = capfd.readouterr()
        states = _task_states(run)
        assert str(run.state) == "failed"
        assert states["kafka"] == "failed"
        assert states["mlflow"] == "success" and states["hdfs"] == "success"
        assert "Kafka is unhealthy" in output.out + output.err

        status = subprocess.run([LAKEPULSE, "status"], capture_output=True, text=True, timeout=120)
        assert status.returncode != 0
        kafka_line = next(line for line in status.stdout.splitlines() if " kafka " in line)
        assert kafka_line.startswith("DOWN")
    finally:
        started_at = time.monotonic()
        process.start(broker)
        assert time.monotonic() - started_at < broker.start_timeout


def test_the_api_server_lists_the_dags_to_a_logged_in_user_only(platform):
    import requests

    from lakepulse.services.airflow import admin_password

    base = platform.airflow.url
    assert requests.get(f"{base}/api/v2/dags", timeout=30).status_code == 401
    login = {"username": platform.airflow.admin_user, "password": admin_password(platform)}
    token = requests.post(f"{base}/auth/token", json=login, timeout=30).json()["access_token"]
    listed = requests.get(f"{base}/api/v2/dags", headers={"Authorization": f"Bearer {token}"},
                          timeout=30).json()  # fmt: skip
    dag_ids = {dag["dag_id"] for dag in listed["dags"]}
    assert {"cluster_health", "streaming_supervisor"} <= dag_ids
    assert requests.get(f"{base}/", timeout=30).ok  # the UI itself
