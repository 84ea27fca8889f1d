"""The benchmark's private deployment: Kafka + HDFS (no Airflow, no MLflow) and the ingest job.

Its own data directory (``bench/out/data``, wiped at every run) and its own ports (the
defaults + 22000), so it disturbs neither ``make run`` (the defaults) nor test sessions (+20000,
+21000). The settings come from a TOML file the benchmark writes (``bench/out/lakepulse.toml``,
named by ``LAKEPULSE_CONFIG``) plus ``LAKEPULSE__*`` variables: a developer's own
``lakepulse.toml`` never leaks in.

Airflow is left out on purpose: the ``streaming_supervisor`` DAG only launches the job with
SparkSubmitOperator (client mode, ``local[2]``) and watches it. The same ``spark-submit``
command line is built here from the same functions (``spark_submit_conf``,
``spark_submit_jars``, ``spark_submit_env``), so the job measured is the job Airflow runs, while
Airflow's four processes would take CPU from a 2-core machine and its watchdog could restart a
job that the overload step makes fall behind on purpose.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lakepulse.services import hdfs, kafka, process, stack
from lakepulse.services.process import Health, ServiceSpec
from lakepulse.settings import (
    PROJECT_ROOT,
    PathSettings,
    Settings,
    default_ports,
    load_settings,
    offset_ports_environment,
)
from lakepulse.spark_session import spark_submit_conf, spark_submit_env, spark_submit_jars
from lakepulse.streaming_status import read_heartbeat
from lakepulse.webhdfs import WebHdfs, WebHdfsError

PORT_OFFSET = 22000
DEFAULT_PORTS = default_ports()
JOB_NAME = "bench-ingest-events"
# Query names the job reports in its heartbeat (lakepulse.streaming.ingest_job).
RAW_QUERY = "ingest_events_raw"
CURATE_QUERY = "ingest_events_curate"


def bench_environment(
    data_dir: Path, config_file: Path, offset: int = PORT_OFFSET
) -> dict[str, str]:
    """``LAKEPULSE_*`` variables of the private deployment (children inherit them)."""
    return {
        "LAKEPULSE_CONFIG": str(config_file),
        "LAKEPULSE__PATHS__DATA_DIR": str(data_dir),
        # Explicit: a job run from an exported commit must still find the checkout's jars.
        "LAKEPULSE__PATHS__JARS_DIR": str(PathSettings().jars_dir),
        **offset_ports_environment(offset),
        "LAKEPULSE__AIRFLOW__MANAGED": "false",
        "LAKEPULSE__MLFLOW__MANAGED": "false",
    }


def write_config(path: Path, spark: Mapping[str, Any]) -> None:
    """The deployment's TOML file: only a [spark] section (empty values are left out)."""
    lines = ["# Written by bench/pipeline.py for the benchmark's private deployment.", "[spark]"]
    for key, value in spark.items():
        if value is None:
            continue
        lines.append(f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def activate(data_dir: Path, config_file: Path) -> Settings:
    """Export the deployment's environment in this process and resolve its settings."""
    os.environ.update(bench_environment(data_dir, config_file))
    return load_settings()


def wipe(settings: Settings, say: Callable[[str], None]) -> None:
    """Stop what an earlier benchmark run left running, then delete its data directory."""
    process.stop(ingest_job_spec(settings, max_seconds=0))
    stack.down(settings, say=lambda line: None)
    data_dir = settings.paths.data_dir
    if data_dir.exists():
        shutil.rmtree(data_dir)
        say(f"wiped {data_dir}")


def drop_data(settings: Settings) -> None:
    """Delete the Kafka and HDFS data of a stopped deployment (logs and settings stay)."""
    for folder in (kafka.kafka_dir(settings) / "data", hdfs.hdfs_dir(settings)):
        shutil.rmtree(folder, ignore_errors=True)


def start_services(settings: Settings, say: Callable[[str], None]) -> None:
    """Kafka and HDFS, the topics and the lake folders (stack.up without Airflow and MLflow)."""

    def progress_only(line: str) -> None:  # not the closing summary: it names Airflow's URL
        if "Lakepulse is up" not in line:
            say(line)

    stack.up(settings, start_producer=False, wait_for_data=False, say=progress_only)


def stop_services(settings: Settings, say: Callable[[str], None]) -> None:
    say(process.stop(ingest_job_spec(settings, max_seconds=0)))
    stack.down(settings, say=say)


def export_commit(commit: str, destination: Path) -> Path:
    """``plugins/`` and ``spark/`` of a commit, extracted below ``destination`` (replaced)."""
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "plugins", "spark"],
        cwd=PROJECT_ROOT, capture_output=True, check=True,
    )  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def spark_submit_command(settings: Settings, max_seconds: float, code: Path) -> list[str]:
    """What SparkSubmitOperator runs for the streaming_supervisor DAG (client mode)."""
    command = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        settings.spark.master,
        "--deploy-mode",
        settings.spark.deploy_mode,
        "--name",
        JOB_NAME,
    ]
    for key, value in spark_submit_conf(settings).items():
        command += ["--conf", f"{key}={value}"]
    command += ["--jars", ",".join(spark_submit_jars(settings))]
    # --max-seconds: the job stops by itself even if the benchmark dies without stopping it.
    script = str(code / "spark" / "ingest_events.py")
    return [*command, script, "--max-seconds", f"{max_seconds:.0f}"]


def ingest_job_spec(
    settings: Settings, max_seconds: float, code: Path = PROJECT_ROOT
) -> ServiceSpec:
    """The ingest job as a service (pid file, log file, process group) of this deployment.

    ``code``: the tree whose ``spark/`` and ``plugins/`` run (the checkout, or an exported
    commit, which then comes first on the driver's PYTHONPATH).
    """
    client = WebHdfs(settings.hdfs, timeout=5.0)
    env = spark_submit_env()
    if code != PROJECT_ROOT:
        env["PYTHONPATH"] = str(code / "plugins")
    return ServiceSpec(
        name=JOB_NAME,
        command=spark_submit_command(settings, max_seconds, code),
        health=lambda: raw_query_running(client, settings.status_path),
        run_dir=settings.paths.data_dir,
        env=env,
        cwd=PROJECT_ROOT,
        start_timeout=300.0,
    )


def raw_query_running(client: WebHdfs, status_dir: str) -> Health:
    """The job's Kafka -> raw query has reported progress (it has run a first batch)."""
    try:
        heartbeat = read_heartbeat(client, status_dir)
    except WebHdfsError as exc:
        return Health(False, f"heartbeat unreadable: {exc}")
    queries = (heartbeat or {}).get("queries") or {}
    raw = queries.get(RAW_QUERY) or {}
    if raw.get("status") in {"failed", "stopped"}:
        raise process.ServiceError(f"the raw query ended: {str(raw.get('error'))[:500]}")
    running = raw.get("status") in {"progress", "idle"}
    return Health(running, f"{len(queries)} queries reported; raw: {raw.get('status')}")


def start_ingest_job(settings: Settings, max_seconds: float, code: Path) -> tuple[str, float]:
    """Start the job; returns what was done and how long it took to run its first batch."""
    started = time.monotonic()
    outcome = process.start(ingest_job_spec(settings, max_seconds, code))
    return outcome, time.monotonic() - started


def job_writes_curated(settings: Settings, wait_s: float = 20.0) -> bool:
    """Whether the running job has a query writing the curated ``events`` table.

    Asked of the job's heartbeat, not of this checkout's code: the job may run another commit.
    """
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if CURATE_QUERY in job_queries(settings):
            return True
        time.sleep(1.0)
    return False


def job_failure(settings: Settings) -> str | None:
    """None while the job's process lives; otherwise why it ended (from its heartbeat)."""
    if process.read_pid(ingest_job_spec(settings, max_seconds=0)) is not None:
        return None
    failed = [
        f"{name}: {str(query.get('error')).strip().splitlines()[0][:600]}"
        for name, query in job_queries(settings).items()
        if query.get("status") == "failed"
    ]
    log = settings.paths.data_dir / "logs" / f"{JOB_NAME}.log"
    return "; ".join(failed) or f"the job's process exited (see {log})"


def service_pids(settings: Settings) -> dict[str, int | None]:
    """Process (group) ids of the job and the services, None for what is not running."""
    specs = [
        ingest_job_spec(settings, max_seconds=0),
        kafka.broker_spec(settings),
        hdfs.namenode_spec(settings),
        hdfs.datanode_spec(settings),
    ]
    return {spec.name: process.read_pid(spec) for spec in specs}


def job_queries(settings: Settings) -> dict[str, Any]:
    """Per-query progress from the job's heartbeat ({} when unreadable)."""
    try:
        heartbeat = read_heartbeat(WebHdfs(settings.hdfs, timeout=5.0), settings.status_path)
    except WebHdfsError:
        return {}
    return (heartbeat or {}).get("queries") or {}
