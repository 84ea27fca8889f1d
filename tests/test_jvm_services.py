"""The JVM services (Kafka, HDFS NameNode and DataNode) started from the Maven jars.

One Kafka broker and one HDFS (NameNode + DataNode) run for this module, on free ports picked at
run time (never the defaults, which a running Lakepulse stack may hold) and in a temporary data
directory; the last test stops them and checks that no process is left.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from lakepulse.services import hdfs, kafka, process
from lakepulse.services.jvm import FETCH_COMMAND
from lakepulse.settings import Settings, load_settings
from lakepulse.webhdfs import WebHdfs, WebHdfsError

pytestmark = pytest.mark.platform

# artifact-version[-classifier].jar; the greedy artifact keeps "log4j-1.2-api" whole, and a
# version needs a dot, so "spark-sql-kafka-0-10_2.13" and "...-linux-x86_64" parse too.
_JAR_NAME = re.compile(r"(?P<artifact>.+)-(?P<version>\d+(?:\.\d+)+[^-]*)(?:-[\w.-]+)?\.jar")


def _parse(jar: Path) -> tuple[str, str]:
    match = _JAR_NAME.fullmatch(jar.name)
    assert match, f"unexpected jar name {jar.name}"
    return match["artifact"], match["version"]


def _artifact(jar: Path) -> str:
    return _parse(jar)[0]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("jvm")
    empty_config = root / "lakepulse.toml"  # keeps a developer's lakepulse.toml out
    empty_config.write_text("")
    ports = _free_ports(7)
    env = {
        "LAKEPULSE__PATHS__DATA_DIR": str(root / "data"),
        "LAKEPULSE__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{ports[0]}",
        "LAKEPULSE__KAFKA__CONTROLLER_PORT": str(ports[1]),
        "LAKEPULSE__KAFKA__HEAP": "256m",
        "LAKEPULSE__HDFS__NAMENODE_RPC_PORT": str(ports[2]),
        "LAKEPULSE__HDFS__NAMENODE_HTTP_PORT": str(ports[3]),
        "LAKEPULSE__HDFS__DATANODE_PORT": str(ports[4]),
        "LAKEPULSE__HDFS__DATANODE_HTTP_PORT": str(ports[5]),
        "LAKEPULSE__HDFS__DATANODE_IPC_PORT": str(ports[6]),
    }
    return load_settings(config_file=empty_config, environ=env)


def _specs(settings: Settings) -> list[process.ServiceSpec]:
    return [kafka.broker_spec(settings), hdfs.namenode_spec(settings), hdfs.datanode_spec(settings)]


def _stop_all(settings: Settings) -> None:
    for spec in reversed(_specs(settings)):
        process.stop(spec, timeout=30)


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[dict[str, int]]:
    """Starts the three services; yields their pids; always stops them."""
    for name in ("kafka", "hadoop"):
        if not any((settings.paths.jars_dir / name).glob("*.jar")):
            pytest.fail(f"no jars in {settings.paths.jars_dir / name}: run `{FETCH_COMMAND}`")
    pids: dict[str, int] = {}
    try:
        for spec in _specs(settings):
            process.start(spec)
            pid = process.read_pid(spec)
            assert pid is not None
            pids[spec.name] = pid
        yield pids
    finally:
        _stop_all(settings)


def test_jar_folders_hold_one_version_of_each_artifact(settings: Settings) -> None:
    for name in ("kafka", "hadoop", "spark-kafka"):
        jars = sorted((settings.paths.jars_dir / name).glob("*.jar"))
        assert jars, f"no jars in {settings.paths.jars_dir / name}: run `{FETCH_COMMAND}`"
        versions: dict[str, set[str]] = {}
        for jar in jars:
            artifact, version = _parse(jar)
            versions.setdefault(artifact, set()).add(version)
        doubles = {a: v for a, v in versions.items() if len(v) > 1}
        assert not doubles, f"{name}: several versions of {doubles}"


def test_spark_kafka_jars_add_only_what_pyspark_lacks(settings: Settings) -> None:
    pyspark = pytest.importorskip("pyspark")
    pyspark_jars = {
        _artifact(jar) for jar in (Path(pyspark.__file__).parent / "jars").glob("*.jar")
    }
    ours = {
        jar.name: _artifact(jar) for jar in (settings.paths.jars_dir / "spark-kafka").glob("*.jar")
    }
    assert not set(ours.values()) & pyspark_jars, "already in pyspark/jars: drop from the pom"
    assert f"spark-sql-kafka-0-10_2.13-{pyspark.__version__}.jar" in ours, (
        f"spark.version in infra/pom.xml must equal pyspark {pyspark.__version__}"
    )


def test_services_are_healthy(settings: Settings, stack: dict[str, int]) -> None:
    kafka_state = kafka.kafka_health(settings)
    assert kafka_state.ok and "1 broker(s)" in kafka_state.detail, kafka_state.detail
    hdfs_state = hdfs.hdfs_health(settings)
    assert hdfs_state.ok, hdfs_state.detail
    assert "1 live DataNode(s)" in hdfs_state.detail and "not in safe mode" in hdfs_state.detail


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _listening_addresses(pid: int) -> list[tuple[IPAddress, int]]:
    """The (address, port) pairs the process listens on, read from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)
            # /proc prints the address as 32-bit words in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            address = ipaddress.ip_address(raw)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            found.append((address, int(hex_port, 16)))
    return found


def test_everything_listens_on_loopback_only(stack: dict[str, int]) -> None:
    for name, pid in stack.items():
        addresses = _listening_addresses(pid)
        assert addresses, f"{name} listens nowhere"
        public = [(str(a), port) for a, port in addresses if not a.is_loopback]
        assert not public, f"{name} listens beyond loopback: {public}"


def test_topics_are_created_once_and_carry_messages(
    settings: Settings, stack: dict[str, int]
) -> None:
    topic = settings.kafka.events_topic
    topics = {topic: (3, {"retention.ms": "3600000"})}
    assert kafka.ensure_topics(settings, topics) == [topic]
    assert kafka.ensure_topics(settings, topics) == []
    assert f"topic {topic!r} present" in kafka.kafka_health(settings).detail

    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    producer.produce(topic, key=b"k", value=b"hello")
    assert producer.flush(15) == 0
    consumer = Consumer({
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": "test-jvm-services",
        "auto.offset.reset": "earliest",
    })  # fmt: skip
    try:
        consumer.subscribe([topic])
        message = None
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.value() == b"hello"
    finally:
        consumer.close()


def test_auto_create_is_off(settings: Settings, stack: dict[str, int]) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "message.timeout.ms": 3000}
    )
    errors = []
    producer.produce("typo-topic", value=b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None
    metadata = producer.list_topics(timeout=5)
    assert "typo-topic" not in metadata.topics


def test_webhdfs_round_trip(settings: Settings, stack: dict[str, int]) -> None:
    with WebHdfs(settings.hdfs) as fs:
        assert fs.mkdirs("/lakepulse/_status")
        fs.write_bytes("/lakepulse/_status/x.json", b'{"ok": true}')
        big = os.urandom(3_000_000)
        fs.write_bytes("/lakepulse/_status/big.bin", big)
        assert fs.read_bytes("/lakepulse/_status/x.json") == b'{"ok": true}'
        assert fs.read_bytes("/lakepulse/_status/big.bin") == big
        assert fs.exists("/lakepulse/_status/x.json") and not fs.exists("/lakepulse/nope")
        names = {entry["pathSuffix"]: entry for entry in fs.list("/lakepulse/_status")}
        assert names["big.bin"]["length"] == len(big)
        assert names["x.json"]["owner"] == settings.hdfs.user
        fs.write_bytes("/lakepulse/_status/x.json", b"{}")  # overwrite is the default
        assert fs.read_text("/lakepulse/_status/x.json") == "{}"
        summary = fs.content_summary("/lakepulse")
        assert summary["fileCount"] == 2 and summary["length"] == len(big) + 2

        with pytest.raises(WebHdfsError, match=r"x\.json: HTTP 403: FileAlreadyExists"):
            fs.write_bytes("/lakepulse/_status/x.json", b"again", overwrite=False)
        with pytest.raises(WebHdfsError, match=r"OPEN /lakepulse/nope: HTTP 404") as error:
            fs.read_bytes("/lakepulse/nope")
        assert error.value.status == 404

        assert fs.rename("/lakepulse/_status/x.json", "/lakepulse/_status/y.json")
        assert fs.delete("/lakepulse/_status/big.bin")
        assert not fs.delete("/lakepulse/_status/big.bin")
        fs.write_bytes("/lakepulse/keep.txt", b"kept")


def test_restart_keeps_data_and_does_not_reformat(
    settings: Settings, stack: dict[str, int]
) -> None:
    cluster_id = kafka.cluster_id(settings)
    version_file = hdfs.hdfs_dir(settings) / "name" / "current" / "VERSION"
    namespace = version_file.read_text().split("namespaceID=")[1].split()[0]
    _stop_all(settings)
    for spec in _specs(settings):
        process.start(spec)
        stack[spec.name] = process.read_pid(spec) or 0
    assert kafka.cluster_id(settings) == cluster_id
    assert version_file.read_text().split("namespaceID=")[1].split()[0] == namespace
    assert f"topic {settings.kafka.events_topic!r} present" in kafka.kafka_health(settings).detail
    with WebHdfs(settings.hdfs) as fs:
        assert fs.read_bytes("/lakepulse/keep.txt") == b"kept"


def test_stop_leaves_no_process(settings: Settings, stack: dict[str, int]) -> None:
    _stop_all(settings)
    for name, pid in stack.items():
        assert not process.pid_alive(pid), f"{name} (pid {pid}) still runs"
    for spec in _specs(settings):
        assert process.status(spec).detail == "not running"
        assert not spec.pid_file.exists()
    host, port = kafka.broker_address(settings)
    assert not _port_accepts(host, port)
    assert not _port_accepts(settings.hdfs.namenode_host, settings.hdfs.namenode_http_port)


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
