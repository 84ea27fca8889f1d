"""One typed, frozen settings object, resolved from layered sources.

Order (later wins): built-in defaults, then a TOML file (``LAKEPULSE_CONFIG`` or
``lakepulse.toml`` in the project root), then environment variables named
``LAKEPULSE__<SECTION>__<KEY>`` (for example ``LAKEPULSE__KAFKA__BOOTSTRAP_SERVERS``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV_PREFIX = "LAKEPULSE__"


class SettingsError(ValueError):
    """A setting is missing or has a value of the wrong type."""


@dataclass(frozen=True)
class PathSettings:
    # Every piece of state (logs, pids, HDFS blocks, Kafka logs, databases) lives below data_dir.
    data_dir: Path = PROJECT_ROOT / ".lakepulse"
    # NAB series (numenta/NAB, MIT licence); when missing, the built-in generator stands in.
    nab_dir: Path = PROJECT_ROOT.parent / "shared" / "data" / "nab"
    jars_dir: Path = PROJECT_ROOT / "infra" / "target"


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    controller_port: int = 9093
    events_topic: str = "events"
    events_partitions: int = 3
    # Malformed events are parked here for inspection and replay: kept longer than events.
    dlq_topic: str = "events.dlq"
    dlq_partitions: int = 1
    replication_factor: int = 1
    # 1 on a single node; on a cluster with replication 3, 2 makes acks=all survive one loss.
    min_insync_replicas: int = 1
    retention_hours: int = 168
    dlq_retention_hours: int = 720
    cleanup_policy: str = "delete"
    heap: str = "512m"
    # False when Lakepulse points at a Kafka cluster it does not run itself.
    managed: bool = True


@dataclass(frozen=True)
class HdfsSettings:
    namenode_host: str = "127.0.0.1"
    namenode_rpc_port: int = 8020
    namenode_http_port: int = 9870
    datanode_port: int = 9866
    datanode_http_port: int = 9864
    datanode_ipc_port: int = 9867
    user: str = "lakepulse"
    lake_root: str = "/lakepulse"
    heap: str = "384m"
    managed: bool = True
    # Empty: hdfs://namenode_host:namenode_rpc_port. "file://" keeps the lake on local disk
    # below lake_root (tests of pure jobs); lake_root must then be absolute.
    fs_uri_override: str = ""

    @property
    def fs_uri(self) -> str:
        return self.fs_uri_override or f"hdfs://{self.namenode_host}:{self.namenode_rpc_port}"

    @property
    def webhdfs_url(self) -> str:
        return f"http://{self.namenode_host}:{self.namenode_http_port}/webhdfs/v1"

    def lake_path(self, *parts: str) -> str:
        """Absolute HDFS URI of a path below the lake root."""
        return "/".join([self.fs_uri + self.lake_root.rstrip("/"), *parts])


@dataclass(frozen=True)
class SparkSettings:
    master: str = "local[2]"
    deploy_mode: str = "client"
    driver_memory: str = "1g"
    # On 2 cores the default of 200 shuffle partitions makes small batches ~17x slower.
    shuffle_partitions: int = 4
    trigger_seconds: int = 10
    max_offsets_per_trigger: int = 200_000
    # A job whose last progress report is older than this is considered dead.
    heartbeat_timeout_seconds: int = 120
    # Spark's web UI for jobs Lakepulse submits; 0 turns it off.
    ui_port: int = 0
    # Event-time lateness allowed (Spark interval: "10 minutes", "1 hour 30 minutes"). Events
    # older than the watermark (max event time of earlier batches minus this) go to late_events.
    watermark_delay: str = "10 minutes"


@dataclass(frozen=True)
class SupervisionSettings:
    """When streaming_supervisor restarts a running job (see lakepulse.streaming.watchdog)."""

    # Data waiting and no offset committed for this long: stalled.
    stall_after_seconds: int = 300
    # Lag (events) above this and growing for lag_growth_window_seconds: falling behind.
    max_lag: int = 2_000_000
    lag_growth_window_seconds: int = 600
    # How often the watchdog looks, and how long a new job may take to report first.
    poke_seconds: int = 30
    start_grace_seconds: int = 300


@dataclass(frozen=True)
class AirflowSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    executor: str = "LocalExecutor"
    # Empty means SQLite below data_dir; set a PostgreSQL URI for a real deployment.
    sql_alchemy_conn: str = ""
    admin_user: str = "admin"
    parallelism: int = 4
    managed: bool = True

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class MlflowSettings:
    host: str = "127.0.0.1"
    port: int = 5000
    # Empty means SQLite below data_dir.
    backend_store_uri: str = ""
    artifacts_destination: str = ""
    experiment: str = "lakepulse"
    managed: bool = True

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 2525
    sender: str = "lakepulse@localhost"
    recipients: str = "operators@localhost"
    starttls: bool = False
    # True: Lakepulse runs a local mailbox on host:port that keeps every message it receives
    # (<data_dir>/mailbox, Maildir); False: host:port is your own mail relay.
    managed: bool = True


@dataclass(frozen=True)
class QualitySettings:
    """Data quality (lakepulse.quality): what a partition must meet to be trusted."""

    # A partition whose newest event arrived longer ago than this is stale.
    freshness_max_age_hours: float = 6.0
    # Per-source value ranges and distributions learned from history, reviewed and checked in
    # (`lakepulse quality profile` proposes them). Relative paths start at the project root.
    profile_path: Path = PROJECT_ROOT / "expectations" / "profiles" / "events_sources.json"
    # A source's mean in a partition more than this many of its historical standard deviations
    # away from its historical mean is a distribution shift. No day of any NAB series moves more
    # than 4 (a machine failing, a road closed): 5 flags a broken feed, not a real anomaly.
    max_mean_shift_sigmas: float = 5.0
    # Rows shown per failed expectation in the alert e-mail.
    sample_rows: int = 5


@dataclass(frozen=True)
class ProducerSettings:
    # Replay speed-up: 300 turns NAB's 5-minute steps into one event per second per source.
    speedup: float = 300.0
    # Comma-separated "category/series" names, or empty for all 58.
    sources: str = ""
    synthetic_sources: int = 8
    # Events per second of wall time across all sources (synthetic); 0 paces by speedup instead.
    rate: float = 0.0
    # NAB series span different years: rebasing puts them all on the replay's own clock, so one
    # event-time watermark fits every source (the original time stays in source_time).
    rebase_times: bool = True
    # Shares of the messages sent that are faults, for testing the pipeline (0 in production).
    malformed_share: float = 0.0
    duplicate_share: float = 0.0
    late_share: float = 0.0
    out_of_order_share: float = 0.0
    # How far behind the event-time front an event may arrive and still count (the watermark's
    # delay): late events are older than this, out-of-order ones stay within it.
    lateness_seconds: float = 600.0


@dataclass(frozen=True)
class MlSettings:
    """Forecasting models and live scoring (lakepulse.ml)."""

    registered_model: str = "lakepulse-forecaster"
    # An event whose anomaly score reaches this goes to the anomalies topic.
    # The threshold that maximises the NAB standard-profile score of the detector (bench/nab).
    anomaly_threshold: float = 0.58
    anomalies_topic: str = "anomalies"
    anomalies_partitions: int = 1
    # How often live scoring looks for a new champion.
    champion_poll_seconds: float = 30.0
    # Drift (lakepulse.ml.drift) above this starts ml_retrain.
    drift_threshold: float = 1.0
    # Rows of each source's recent history that drift compares with its training scale.
    drift_rows: int = 288


@dataclass(frozen=True)
class Settings:
    paths: PathSettings = field(default_factory=PathSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    hdfs: HdfsSettings = field(default_factory=HdfsSettings)
    spark: SparkSettings = field(default_factory=SparkSettings)
    supervision: SupervisionSettings = field(default_factory=SupervisionSettings)
    airflow: AirflowSettings = field(default_factory=AirflowSettings)
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    producer: ProducerSettings = field(default_factory=ProducerSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    ml: MlSettings = field(default_factory=MlSettings)

    @property
    def airflow_home(self) -> Path:
        return self.paths.data_dir / "airflow"

    @property
    def airflow_sql_alchemy_conn(self) -> str:
        return self.airflow.sql_alchemy_conn or f"sqlite:///{self.airflow_home / 'airflow.db'}"

    @property
    def mlflow_backend_store_uri(self) -> str:
        default = f"sqlite:///{self.paths.data_dir / 'mlflow' / 'mlflow.db'}"
        return self.mlflow.backend_store_uri or default

    @property
    def mlflow_artifacts_destination(self) -> str:
        return self.mlflow.artifacts_destination or str(
            self.paths.data_dir / "mlflow" / "artifacts"
        )

    @property
    def raw_events_path(self) -> str:
        return self.hdfs.lake_path("raw", "events")

    @property
    def checkpoints_path(self) -> str:
        return self.hdfs.lake_path("_checkpoints")

    @property
    def status_path(self) -> str:
        return self.hdfs.lake_root.rstrip("/") + "/_status"

    @property
    def quality_path(self) -> str:
        """Verdicts, validation results and the quarantined partitions' registry (HDFS)."""
        return self.hdfs.lake_root.rstrip("/") + "/_quality"

    @property
    def data_docs_dir(self) -> Path:
        """Where Great Expectations builds Data Docs (served by the Airflow API server)."""
        return self.paths.data_dir / "quality" / "data_docs"

    @property
    def mailbox_dir(self) -> Path:
        return self.paths.data_dir / "mailbox"


def _coerce(raw: Any, target: Any, key: str, source: str) -> Any:
    """Turn a raw value from a file or the environment into the declared type."""
    if isinstance(target, str):
        target = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}.get(
            target, target
        )
    if isinstance(target, types.UnionType | typing._UnionGenericAlias):  # type: ignore[attr-defined]
        target = next(t for t in typing.get_args(target) if t is not type(None))
    try:
        if target is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if target is Path:
            return Path(str(raw)).expanduser().resolve()
        return target(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(
            f"setting {key} from {source} has value {raw!r}, which is not a valid "
            f"{getattr(target, '__name__', target)}: {exc}. Fix it in {source}."
        ) from exc


def _section_fields(section_cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(section_cls)}


def load_settings(
    config_file: Path | None = None, environ: typing.Mapping[str, str] | None = None
) -> Settings:
    """Resolve settings: defaults, then the TOML file, then LAKEPULSE__SECTION__KEY variables."""
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get("LAKEPULSE_CONFIG"):
        config_file = Path(environ["LAKEPULSE_CONFIG"])
        if not config_file.is_file():
            raise SettingsError(
                f"LAKEPULSE_CONFIG points at {config_file}, which does not exist. "
                "Create it or unset LAKEPULSE_CONFIG."
            )
    if config_file is None and (PROJECT_ROOT / "lakepulse.toml").is_file():
        config_file = PROJECT_ROOT / "lakepulse.toml"

    file_values: dict[str, Any] = {}
    if config_file is not None:
        with open(config_file, "rb") as handle:
            file_values = tomllib.load(handle)

    sections: dict[str, Any] = {}
    section_classes = {f.name: f.default_factory for f in dataclasses.fields(Settings)}  # type: ignore[misc]
    for key in list(file_values) + [k for k in environ if k.startswith(ENV_PREFIX)]:
        section_name = (
            key[len(ENV_PREFIX) :].split("__")[0].lower() if key.startswith(ENV_PREFIX) else key
        )
        if section_name not in section_classes:
            raise SettingsError(
                f"unknown settings section {section_name!r} (from {key}); "
                f"known sections: {', '.join(section_classes)}"
            )

    for section_name, section_cls in section_classes.items():
        fields = _section_fields(section_cls)
        values: dict[str, Any] = {}
        from_file = file_values.get(section_name, {})
        for name, raw in from_file.items():
            if name not in fields:
                raise SettingsError(
                    f"unknown setting [{section_name}] {name} in {config_file}; "
                    f"known keys: {', '.join(fields)}"
                )
            values[name] = _coerce(
                raw, fields[name].type, f"{section_name}.{name}", str(config_file)
            )
        prefix = f"{ENV_PREFIX}{section_name.upper()}__"
        for env_key, raw in environ.items():
            if not env_key.startswith(prefix):
                continue
            name = env_key[len(prefix) :].lower()
            if name not in fields:
                tried = ", ".join(prefix + f.upper() for f in fields)
                raise SettingsError(
                    f"unknown environment setting {env_key}; "
                    f"keys tried for [{section_name}]: {tried}"
                )
            values[name] = _coerce(raw, fields[name].type, f"{section_name}.{name}", env_key)
        sections[section_name] = section_cls(**values)
    return Settings(**sections)


def default_ports() -> dict[str, int]:
    """Every listening port of the local deployment, as ``SECTION__KEY`` -> default port."""
    ports = {}
    for section in dataclasses.fields(Settings):
        for item in dataclasses.fields(section.default_factory):  # type: ignore[arg-type]
            # 0 is "off" (the Spark UI), not a port to move.
            if item.name.endswith("port") and isinstance(item.default, int) and item.default:
                ports[f"{section.name.upper()}__{item.name.upper()}"] = item.default
    return ports


def offset_ports_environment(offset: int) -> dict[str, str]:
    """``LAKEPULSE__*`` variables moving every port of the local deployment by ``offset``,
    so that a second deployment (tests, benchmarks) runs beside the default one."""
    host, port = KafkaSettings.bootstrap_servers.rsplit(":", 1)
    return {
        "LAKEPULSE__KAFKA__BOOTSTRAP_SERVERS": f"{host}:{int(port) + offset}",
        **{f"LAKEPULSE__{key}": str(port + offset) for key, port in default_ports().items()},
    }


@cache
def get_settings() -> Settings:
    """The process-wide settings (resolved once)."""
    return load_settings()
