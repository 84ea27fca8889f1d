"""The whole local platform: start it, check it, stop it.

`lakepulse up` (what `make run` calls) starts the services this deployment manages, creates
the topics and lake folders, lets Airflow start the streaming job, starts a replay producer,
and returns once the first events have landed in HDFS. Each step is idempotent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from lakepulse.log import get_logger
from lakepulse.services import airflow, hdfs, kafka, mailbox, mlflow, process
from lakepulse.services.process import Health, ServiceSpec
from lakepulse.settings import PROJECT_ROOT, Settings
from lakepulse.streaming_status import current_state
from lakepulse.webhdfs import WebHdfs, WebHdfsError

log = get_logger("stack")

LAKE_FOLDERS = ("raw", "quarantine", "curated", "aggregates", "_checkpoints", "_status")


@dataclass(frozen=True)
class Check:
    name: str
    health: Health


def service_groups(settings: Settings) -> list[list[ServiceSpec]]:
    """Managed services in start order; each group starts in parallel."""
    first: list[ServiceSpec] = []
    second: list[ServiceSpec] = []
    if settings.kafka.managed:
        first.append(kafka.broker_spec(settings))
    if settings.hdfs.managed:
        first.append(hdfs.namenode_spec(settings))
        second.append(hdfs.datanode_spec(settings))
    if settings.mlflow.managed:
        first.append(mlflow.spec(settings))
    if settings.smtp.managed:
        first.append(mailbox.spec(settings))
    groups = [first, second]
    if settings.airflow.managed:
        groups.append(airflow.specs(settings))
    return [group for group in groups if group]


def producer_spec(settings: Settings) -> ServiceSpec:
    """A replay producer that keeps events flowing, so the platform has something to do."""
    command = [
        str(Path(sys.executable).parent / "lakepulse"),
        "produce",
        "--speedup",
        str(settings.producer.speedup),
        "--no-progress",
        # Restarting the platform continues the replay instead of sending it all again.
        "--resume",
        str(settings.paths.data_dir / "producer" / "replay-position.json"),
    ]

    def running() -> Health:
        pid = process.read_pid(spec)
        return Health(pid is not None, "replaying" if pid else "not running")

    spec = ServiceSpec(
        name="producer", command=command, health=running, run_dir=settings.paths.data_dir,
        start_timeout=10.0,
    )  # fmt: skip
    return spec


def all_specs(settings: Settings) -> list[ServiceSpec]:
    return [spec for group in service_groups(settings) for spec in group]


def check_jars(settings: Settings) -> None:
    needed = {"kafka": settings.kafka.managed, "hadoop": settings.hdfs.managed, "spark-kafka": True}
    missing = [
        name
        for name, wanted in needed.items()
        if wanted and not any((settings.paths.jars_dir / name).glob("*.jar"))
    ]
    if missing:
        raise SystemExit(
            f"JVM parts missing under {settings.paths.jars_dir}: {', '.join(missing)}. "
            "Run `make jars` (fetches them from Maven Central) and try again."
        )


def topics(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    """The topics the pipeline needs: name -> (partitions, topic config), all from settings."""
    kafka_settings = settings.kafka

    def config(retention_hours: int) -> dict[str, str]:
        return {
            "retention.ms": str(retention_hours * 3600 * 1000),
            "cleanup.policy": kafka_settings.cleanup_policy,
            "min.insync.replicas": str(kafka_settings.min_insync_replicas),
        }

    return {
        kafka_settings.events_topic: (
            kafka_settings.events_partitions,
            config(kafka_settings.retention_hours),
        ),
        kafka_settings.dlq_topic: (
            kafka_settings.dlq_partitions,
            config(kafka_settings.dlq_retention_hours),
        ),
        # Anomalies are alerts: kept as long as dead letters.
        settings.ml.anomalies_topic: (
            settings.ml.anomalies_partitions,
            config(kafka_settings.dlq_retention_hours),
        ),
    }


def prepare_lake(settings: Settings) -> None:
    """Topics and lake folders the pipeline writes to (idempotent)."""
    kafka.ensure_topics(settings, topics(settings))
    client = WebHdfs(settings.hdfs)
    for folder in LAKE_FOLDERS:
        client.mkdirs(f"{settings.hdfs.lake_root.rstrip('/')}/{folder}")


def raw_events_landed(settings: Settings) -> Health:
    """At least one Parquet file in the raw zone (partitions event_date=/event_hour=)."""
    client = WebHdfs(settings.hdfs)
    raw_root = f"{settings.hdfs.lake_root.rstrip('/')}/raw/events"
    try:
        found = _first_parquet(client, raw_root, depth=3)
    except WebHdfsError as exc:
        return Health(False, f"nothing landed yet ({exc})")
    if found is None:
        return Health(False, f"no Parquet file under {raw_root} yet")
    return Health(True, f"first Parquet file: {found}")


def _first_parquet(client: WebHdfs, folder: str, depth: int) -> str | None:
    """Depth-first look for a Parquet file below partition folders (name=value)."""
    entries = client.list(folder)
    for entry in entries:
        if entry["type"] == "FILE" and entry["pathSuffix"].endswith(".parquet"):
            return f"{folder}/{entry['pathSuffix']}"
    if depth == 0:
        return None
    for entry in entries:
        if entry["type"] == "DIRECTORY" and "=" in entry["pathSuffix"]:
            found = _first_parquet(client, f"{folder}/{entry['pathSuffix']}", depth - 1)
            if found:
                return found
    return None


def main_job_landing(settings: Settings) -> Health:
    """The streaming job runs (fresh heartbeat) and events have landed in the raw zone."""
    job = current_state(
        WebHdfs(settings.hdfs), settings.status_path, settings.spark.heartbeat_timeout_seconds
    )
    if not job.alive:
        return Health(False, f"streaming job not running yet: {job.reason}")
    return raw_events_landed(settings)


def up(settings: Settings, *, start_producer: bool = True, wait_for_data: bool = True,
       data_timeout: float = 900.0, say: Callable[[str], None] = print) -> None:  # fmt: skip
    check_jars(settings)
    for group in service_groups(settings):
        for outcome in process.start_all(group):
            say(outcome)
    prepare_lake(settings)
    say("topics and lake folders ready")
    if start_producer:
        say(process.start(producer_spec(settings)))
    if wait_for_data:
        say("waiting for streaming_supervisor to start the job and the first events to land")
        landed = process.wait_until(
            partial(main_job_landing, settings), data_timeout, interval=5.0, what="landing"
        )
        if not landed.ok:
            raise SystemExit(
                f"no events landed in HDFS within {data_timeout:.0f}s: {landed.detail}. "
                f"See the streaming_supervisor DAG's task log in the Airflow UI and "
                f"{settings.paths.data_dir / 'logs'}."
            )
        say(f"events landed: {landed.detail}")
    say(summary(settings))


def summary(settings: Settings) -> str:
    creds = airflow.credentials_file(settings)
    lines = [
        "",
        "Lakepulse is up:",
        f"  Airflow UI and REST API  {settings.airflow.url}  (user {settings.airflow.admin_user}, "
        f"password in {creds})",
        f"  MLflow                   {settings.mlflow.tracking_uri}",
        f"  HDFS NameNode UI         http://{settings.hdfs.namenode_host}:"
        f"{settings.hdfs.namenode_http_port}",
        f"  Kafka bootstrap          {settings.kafka.bootstrap_servers}",
        f"  State and logs           {settings.paths.data_dir}",
        '  Try: .venv/bin/lakepulse sql "select count(*) from raw_events"',
    ]
    return "\n".join(lines)


def down(settings: Settings, say: Callable[[str], None] = print) -> None:
    say(process.stop(producer_spec(settings)))
    groups = service_groups(settings)
    # Airflow first, so that its supervisor does not restart the job being stopped.
    for group in reversed(groups):
        for spec in group:
            say(process.stop(spec))
        if group and group[0].name.startswith("airflow"):
            stopped = stop_strays(settings)
            if stopped:
                say(f"streaming job processes stopped: {stopped}")


def stop_strays(settings: Settings, timeout: float = 20.0) -> list[int]:
    """Stop this deployment's Spark jobs that outlived Airflow.

    A job belongs to this deployment when it runs one of the checkout's `spark/` scripts with
    this deployment's data directory in its environment (Airflow passes it on).
    """
    script_marker = (str(PROJECT_ROOT / "spark") + os.sep).encode()
    env_marker = f"LAKEPULSE__PATHS__DATA_DIR={settings.paths.data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if script_marker in cmdline and env_marker in environ:
            found.append(int(entry.name))
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(process.pid_alive(p) for p in found) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in found:
        if process.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    return found


def checks(settings: Settings) -> list[Check]:
    """Every service's health, plus the streaming job's."""
    results = [Check(spec.name, process.status(spec)) for spec in all_specs(settings)]
    if not settings.kafka.managed:
        results.append(Check("kafka", kafka.kafka_health(settings)))
    if not settings.hdfs.managed:
        results.append(Check("hdfs", hdfs.hdfs_health(settings)))
    job = current_state(
        WebHdfs(settings.hdfs), settings.status_path, settings.spark.heartbeat_timeout_seconds
    )
    results.append(Check("streaming-job", Health(job.alive, job.reason)))
    producer = process.status(producer_spec(settings))
    results.append(Check("producer (optional)", Health(True, producer.detail)))
    return results


def memory_report(settings: Settings) -> dict[str, int]:
    """Resident memory of each managed service's process group, in bytes."""
    return {
        spec.name: process.resident_memory_bytes(spec)
        for spec in [*all_specs(settings), producer_spec(settings)]
    }
