"""Airflow's four components (api-server, scheduler, dag-processor, triggerer) as services.

Everything deployment-specific (paths, endpoints, secrets, connections) reaches Airflow as
AIRFLOW__* and AIRFLOW_CONN_* environment variables derived from Lakepulse's settings, so the
checked-in airflow.cfg stays the same on a laptop and on a cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from functools import partial
from pathlib import Path

import requests

from lakepulse.connections import airflow_connection_env
from lakepulse.services.process import Health, ServiceSpec
from lakepulse.settings import PROJECT_ROOT, Settings

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def credentials_file(settings: Settings) -> Path:
    return settings.airflow_home / "simple_auth_manager_passwords.json"


def admin_password(settings: Settings) -> str:
    return json.loads(credentials_file(settings).read_text())[settings.airflow.admin_user]


def _instance_secrets(settings: Settings) -> dict[str, str]:
    """Secrets generated once per data directory, shared by all components."""
    path = settings.paths.data_dir / "secrets" / "airflow.json"
    if path.is_file():
        return json.loads(path.read_text())
    from cryptography.fernet import Fernet

    values = {
        "jwt_secret": secrets.token_urlsafe(32),
        "api_secret_key": secrets.token_urlsafe(32),
        "fernet_key": Fernet.generate_key().decode(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values


def _ensure_credentials(settings: Settings) -> None:
    path = credentials_file(settings)
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps({settings.airflow.admin_user: secrets.token_urlsafe(12)}))


def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment every Airflow process of this deployment runs with."""
    home = settings.airflow_home
    instance = _instance_secrets(settings)
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(PROJECT_ROOT / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": settings.airflow.executor,
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow.parallelism),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow.admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(credentials_file(settings)),
        "AIRFLOW__CORE__FERNET_KEY": instance["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow.url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.airflow_sql_alchemy_conn,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(
            home / "logs" / "dag_processor"
        ),
        "AIRFLOW__API__HOST": settings.airflow.host,
        "AIRFLOW__API__PORT": str(settings.airflow.port),
        "AIRFLOW__API__BASE_URL": settings.airflow.url,
        "AIRFLOW__API__SECRET_KEY": instance["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": instance["jwt_secret"],
        # Tasks (spark-submit, the lakepulse CLI) come from the project's virtualenv.
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT)]),
        "PYSPARK_PYTHON": sys.executable,
        "LAKEPULSE_PROJECT_ROOT": str(PROJECT_ROOT),
        # Tasks and the jobs they submit resolve the same deployment, and `lakepulse down`
        # finds this deployment's job processes by it.
        "LAKEPULSE__PATHS__DATA_DIR": str(settings.paths.data_dir),
    }
    env.update(airflow_connection_env(settings))
    env.update({k: v for k, v in os.environ.items() if k.startswith("LAKEPULSE__")})
    return env


def migrate_database(settings: Settings) -> None:
    """Create or upgrade Airflow's metadata database (idempotent)."""
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    _ensure_credentials(settings)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env={**os.environ, **airflow_env(settings)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(
            "`airflow db migrate` failed; Airflow cannot start without its database.\n"
            + result.stdout[-2000:]
            + result.stderr[-3000:]
        )


def monitor_health(settings: Settings) -> dict:
    """Airflow's own view of its components (GET /api/v2/monitor/health)."""
    response = requests.get(f"{settings.airflow.url}/api/v2/monitor/health", timeout=5)
    response.raise_for_status()
    return response.json()


def component_health(settings: Settings, component: str) -> Health:
    try:
        report = monitor_health(settings)
    except (requests.RequestException, ValueError) as exc:
        return Health(False, f"API server at {settings.airflow.url} not answering: {exc}")
    if component == "api-server":
        db = report.get("metadatabase", {}).get("status")
        return Health(db == "healthy", f"API server answering, metadata database {db}")
    key = component.replace("-", "_")
    entry = report.get(key) or {}
    state = entry.get("status")
    return Health(
        state == "healthy",
        f"{component} {state or 'unknown'} (last heartbeat "
        f"{entry.get(f'latest_{key}_heartbeat') or entry.get('latest_scheduler_heartbeat')})",
    )


def specs(settings: Settings) -> list[ServiceSpec]:
    airflow_bin = str(Path(sys.executable).parent / "airflow")
    env = airflow_env(settings)
    result = []
    for component in COMPONENTS:
        command = [airflow_bin, component]
        if component == "api-server":
            command += ["--host", settings.airflow.host, "--port", str(settings.airflow.port)]
        result.append(
            ServiceSpec(
                name=f"airflow-{component}",
                command=command,
                env=env,
                cwd=settings.airflow_home,
                health=partial(component_health, settings, component),
                run_dir=settings.paths.data_dir,
                prepare=partial(migrate_database, settings) if component == "api-server" else None,
                start_timeout=240.0,
            )
        )
    return result
