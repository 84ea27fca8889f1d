"""A single-node Kafka 4 (KRaft: broker and controller in one JVM) as a service, plus topics.

Everything lives below ``<data_dir>/kafka``: the generated ``server.properties`` and
``log4j2.properties``, the stable ``cluster.id`` and the partition data in ``data/``.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from lakepulse.log import get_logger
from lakepulse.services.jvm import java_command, require_jars
from lakepulse.services.process import Health, ServiceError, ServiceSpec
from lakepulse.settings import Settings

log = get_logger("kafka")

# librdkafka logs every refused connection while the broker is still starting; health polling
# would flood the logs with them, and the health result already says what is wrong.
_quiet = logging.getLogger("lakepulse.kafka.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False

NODE_ID = 1
TopicSpec = tuple[int, Mapping[str, str]]

_LOG4J2 = """\
# Written by lakepulse.services.kafka: the broker logs to stdout, which the service log captures.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# One line per request and per partition state change: too much for a local log.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""

# The tools (StorageTool, ProducerPerformance, ...) print their results on stdout: logs go to
# stderr, warnings only, as Kafka's own tools-log4j2 configuration does.
_TOOLS_LOG4J2 = """\
# Written by lakepulse.services.kafka for the Kafka command-line tools.
status = warn
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
"""


def kafka_dir(settings: Settings) -> Path:
    return settings.paths.data_dir / "kafka"


def broker_address(settings: Settings) -> tuple[str, int]:
    """Host and port of the (first) bootstrap server, where the managed broker listens."""
    first = settings.kafka.bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"kafka.bootstrap_servers {first!r} is not host:port")
    return host, int(port)


def server_properties(settings: Settings) -> dict[str, str]:
    host, port = broker_address(settings)
    controller = f"{host}:{settings.kafka.controller_port}"
    one = "1"  # replication factor / min ISR of the internal topics on a single node
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@{controller}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(kafka_dir(settings) / "data"),
        "log.retention.hours": str(settings.kafka.retention_hours),
        # Topics are created on purpose (ensure_topics), never by a typo in a producer.
        "auto.create.topics.enable": "false",
        "num.partitions": str(settings.kafka.events_partitions),
        "offsets.topic.replication.factor": one,
        "transaction.state.log.replication.factor": one,
        "transaction.state.log.min.isr": one,
        "share.coordinator.state.topic.replication.factor": one,
        "share.coordinator.state.topic.min.isr": one,
        # The first consumer group otherwise waits for 50 offsets partitions to be created.
        "offsets.topic.num.partitions": "5",
        "group.initial.rebalance.delay.ms": "0",
    }


def _write_properties(path: Path, values: Mapping[str, str]) -> None:
    lines = ["# Written by lakepulse.services.kafka from the Lakepulse settings; edits are lost."]
    lines += [f"{key}={value}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")


def cluster_id(settings: Settings) -> str:
    """The cluster id, made once per data directory (Kafka refuses a log dir of another id)."""
    path = kafka_dir(settings) / "cluster.id"
    if path.is_file():
        return path.read_text().strip()
    # Kafka's Uuid.randomUuid(): 16 random bytes, URL-safe base64 without padding, not "-..".
    value = "-"
    while value.startswith("-"):
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    return value


def tool_command(settings: Settings, main_class: str, *args: str) -> list[str]:
    """A Kafka tool (``org.apache.kafka.tools.ProducerPerformance``, ...) on the broker's jars."""
    config = kafka_dir(settings) / "tools-log4j2.properties"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(_TOOLS_LOG4J2)
    options = [f"-Dlog4j2.configurationFile={config}"]
    return java_command(settings, "kafka", main_class, args, heap="256m", jvm_options=options)


def prepare(settings: Settings) -> None:
    """Write the config files; format the log dir on the first start only."""
    require_jars(settings, "kafka")
    directory = kafka_dir(settings)
    (directory / "data").mkdir(parents=True, exist_ok=True)
    config = directory / "server.properties"
    _write_properties(config, server_properties(settings))
    (directory / "log4j2.properties").write_text(_LOG4J2)
    if (directory / "data" / "meta.properties").is_file():
        return
    command = tool_command(
        settings, "kafka.tools.StorageTool", "format", "-t", cluster_id(settings), "-c", str(config)
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise ServiceError(
            f"formatting Kafka storage in {directory / 'data'} failed:\n"
            f"{result.stdout}{result.stderr}"
        )
    log.info("formatted kafka storage", cluster_id=cluster_id(settings), dir=str(directory))


def broker_spec(settings: Settings) -> ServiceSpec:
    heap = settings.kafka.heap
    options = [
        # Kafka's own start script's GC choice: short pauses over throughput. No -Xms: a local
        # broker that idles should not hold its whole heap.
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        f"-Dlog4j2.configurationFile={kafka_dir(settings) / 'log4j2.properties'}",
        # log4j2's own shutdown hook otherwise stops logging while Kafka's hook still shuts
        # down, hiding whether the shutdown was clean. The console appender flushes each line.
        "-Dlog4j2.shutdownHookEnabled=false",
    ]
    config = str(kafka_dir(settings) / "server.properties")
    return ServiceSpec(
        name="kafka",
        command=java_command(
            settings, "kafka", "kafka.Kafka", [config], heap=heap, jvm_options=options
        ),
        health=partial(kafka_health, settings),
        run_dir=settings.paths.data_dir,
        prepare=partial(prepare, settings),
        start_timeout=90.0,
    )


def _admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers, "logger": _quiet})


def kafka_health(settings: Settings, timeout: float = 3.0) -> Health:
    """OK when at least one broker answers; the detail names the brokers and the events topic."""
    try:
        metadata = _admin(settings).list_topics(timeout=timeout)
    except KafkaException as exc:
        return Health(False, f"Kafka at {settings.kafka.bootstrap_servers} not answering: {exc}")
    brokers = len(metadata.brokers)
    topic = settings.kafka.events_topic
    seen = "present" if topic in metadata.topics else "missing"
    return Health(
        brokers >= 1,
        f"{brokers} broker(s) at {settings.kafka.bootstrap_servers}, topic {topic!r} {seen}",
    )


def ensure_topics(
    settings: Settings, topics: Mapping[str, TopicSpec], timeout: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet: ``{name: (partitions, config)}``.

    A new topic gets its config (retention, cleanup policy, min ISR) and the settings'
    replication factor at creation. Returns the names created. Existing topics are left as they
    are: a partition count is never lowered and raising it would move keys between partitions,
    so a different count is only reported (a warning naming both counts), never "fixed".
    """
    admin = _admin(settings)
    existing = admin.list_topics(timeout=timeout).topics
    mismatched = partition_mismatches(
        topics, {name: len(meta.partitions) for name, meta in existing.items()}
    )
    for name, (have, want) in mismatched.items():
        log.warning(
            "topic exists with another partition count; left as it is",
            topic=name, partitions=have, configured=want,
            hint="raising partitions moves keys between partitions: do it on purpose, by hand",
        )  # fmt: skip
    missing = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=settings.kafka.replication_factor,
            config=dict(config),
        )
        for name, (partitions, config) in topics.items()
        if name not in existing
    ]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            # Another process may have created it between list_topics and create_topics.
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    log.info("created topics", topics=created)
    return created


def partition_mismatches(
    wanted: Mapping[str, TopicSpec], existing: Mapping[str, int]
) -> dict[str, tuple[int, int]]:
    """Existing topics whose partition count differs from the wanted one: name -> (have, want)."""
    return {
        name: (existing[name], partitions)
        for name, (partitions, _config) in wanted.items()
        if name in existing and existing[name] != partitions
    }
