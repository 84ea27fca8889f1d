"""The MLflow tracking server (SQL backend store, local artifact store) as a service."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import requests

from lakepulse.services.process import Health, ServiceSpec
from lakepulse.settings import Settings


def mlflow_health(settings: Settings) -> Health:
    url = f"{settings.mlflow.tracking_uri}/health"
    try:
        response = requests.get(url, timeout=5)
    except requests.RequestException as exc:
        return Health(False, f"MLflow at {settings.mlflow.tracking_uri} not answering: {exc}")
    return Health(response.ok, f"MLflow /health answered {response.status_code}")


def _prepare(settings: Settings) -> None:
    Path(settings.mlflow_artifacts_destination).mkdir(parents=True, exist_ok=True)
    (settings.paths.data_dir / "mlflow").mkdir(parents=True, exist_ok=True)


def spec(settings: Settings) -> ServiceSpec:
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host", settings.mlflow.host,
        "--port", str(settings.mlflow.port),
        "--backend-store-uri", settings.mlflow_backend_store_uri,
        "--artifacts-destination", settings.mlflow_artifacts_destination,
        "--workers", "1",
    ]  # fmt: skip
    return ServiceSpec(
        name="mlflow",
        command=command,
        # The job runner serves GenAI features Lakepulse does not use, at ~2 GB of worker processes.
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        health=partial(mlflow_health, settings),
        run_dir=settings.paths.data_dir,
        prepare=partial(_prepare, settings),
        start_timeout=180.0,
    )
