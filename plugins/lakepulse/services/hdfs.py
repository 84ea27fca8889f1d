"""A single-node HDFS (one NameNode, one DataNode) as two services.

Everything lives below ``<data_dir>/hdfs``: the generated Hadoop configuration in ``conf/``
(HADOOP_CONF_DIR, also first on the classpath), the NameNode metadata in ``name/``, the blocks in
``data/``. Every port is bound to the configured NameNode host (127.0.0.1 by default), none to
0.0.0.0. Authentication is Hadoop's "simple" mode and permission checks are off: a single-user
local deployment, where WebHDFS callers name themselves with ``user.name``.
"""

from __future__ import annotations

import os
import socket
import subprocess
from functools import partial
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import requests

from lakepulse.log import get_logger
from lakepulse.services.jvm import jars_dir, java_command, require_jars
from lakepulse.services.process import Health, ServiceError, ServiceSpec
from lakepulse.settings import Settings

log = get_logger("hdfs")

NAMENODE_CLASS = "org.apache.hadoop.hdfs.server.namenode.NameNode"
DATANODE_CLASS = "org.apache.hadoop.hdfs.server.datanode.DataNode"

# The only module opening Hadoop 3.4 needs on Java 17, found by running format, both daemons,
# the web UIs and every WebHDFS call below with -Dsun.reflect.debugModuleAccessChecks=access:
# WebHDFS (Jersey 1 -> JAXB RI 2.2.3) defines accessor classes through the protected
# ClassLoader.defineClass; without this every WebHDFS call answers HTTP 500. (Netty's attempt at
# jdk.internal.misc.Unsafe also fails, but Netty falls back by itself.)
ADD_OPENS: tuple[str, ...] = ("--add-opens=java.base/java.lang=ALL-UNNAMED",)

_LOG4J = """\
# Written by lakepulse.services.hdfs: log to stdout, which the service log captures.
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.out
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
# One line per block allocation or replica change: too much for a local log.
log4j.logger.BlockStateChange=WARN
log4j.logger.org.apache.hadoop.hdfs.server.datanode.DataNode.clienttrace=WARN
log4j.logger.org.apache.hadoop.hdfs.server.namenode.FSNamesystem.audit=WARN
# Warns that there is no native libhadoop; the pure-Java code paths serve instead.
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
"""


def hdfs_dir(settings: Settings) -> Path:
    return settings.paths.data_dir / "hdfs"


def conf_dir(settings: Settings) -> Path:
    return hdfs_dir(settings) / "conf"


def core_site(settings: Settings) -> dict[str, str]:
    return {
        "fs.defaultFS": settings.hdfs.fs_uri,
        "hadoop.tmp.dir": str(hdfs_dir(settings) / "tmp"),
        "hadoop.security.authentication": "simple",
        # The user the web UI acts as when a request names none.
        "hadoop.http.staticuser.user": settings.hdfs.user,
    }


def hdfs_site(settings: Settings) -> dict[str, str]:
    h = settings.hdfs
    host = h.namenode_host
    return {
        "dfs.replication": "1",
        "dfs.namenode.name.dir": (hdfs_dir(settings) / "name").as_uri(),
        "dfs.datanode.data.dir": (hdfs_dir(settings) / "data").as_uri(),
        "dfs.namenode.rpc-address": f"{host}:{h.namenode_rpc_port}",
        "dfs.namenode.http-address": f"{host}:{h.namenode_http_port}",
        "dfs.datanode.address": f"{host}:{h.datanode_port}",
        "dfs.datanode.http.address": f"{host}:{h.datanode_http_port}",
        "dfs.datanode.ipc.address": f"{host}:{h.datanode_ipc_port}",
        # The HTTPS ports are not opened under this policy; pinned anyway so that no default
        # 0.0.0.0 address is ever used should the policy change.
        "dfs.http.policy": "HTTP_ONLY",
        "dfs.namenode.https-address": f"{host}:0",
        "dfs.datanode.https.address": f"{host}:0",
        "dfs.namenode.secondary.http-address": f"{host}:0",
        "dfs.permissions.enabled": "false",
        "dfs.webhdfs.enabled": "true",
        # The DataNode registers as 127.0.0.1; no reverse-DNS check for a loopback cluster.
        "dfs.namenode.datanode.registration.ip-hostname-check": "false",
        # Leave the start-up safe mode as soon as the blocks are reported, not 30 s later.
        "dfs.namenode.safemode.extension": "0",
    }


def _site_xml(values: dict[str, str]) -> str:
    props = "".join(
        f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>\n"
        for k, v in values.items()
    )
    return (
        '<?xml version="1.0"?>\n'
        "<!-- Written by lakepulse.services.hdfs from the Lakepulse settings; edits are lost. -->\n"
        f"<configuration>\n{props}</configuration>\n"
    )


def write_config(settings: Settings) -> Path:
    """Write core-site.xml, hdfs-site.xml and log4j.properties; returns the conf dir."""
    require_jars(settings, "hadoop")
    conf = conf_dir(settings)
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "core-site.xml").write_text(_site_xml(core_site(settings)))
    (conf / "hdfs-site.xml").write_text(_site_xml(hdfs_site(settings)))
    (conf / "log4j.properties").write_text(_LOG4J)
    return conf


def _command(settings: Settings, main_class: str, *args: str) -> list[str]:
    conf = conf_dir(settings)
    options = [
        *ADD_OPENS,
        # The web UIs' "Logs" page lists this folder: the service logs (stdout) are there.
        f"-Dhadoop.log.dir={settings.paths.data_dir / 'logs'}",
    ]
    # The jar folder itself is on the classpath too: it holds webapps/ (the web UIs).
    return java_command(
        settings,
        "hadoop",
        main_class,
        args,
        heap=settings.hdfs.heap,
        jvm_options=options,
        classpath_before=[conf, jars_dir(settings, "hadoop")],
    )


def _env(settings: Settings) -> dict[str, str]:
    return {"HADOOP_CONF_DIR": str(conf_dir(settings))}


def is_formatted(settings: Settings) -> bool:
    return (hdfs_dir(settings) / "name" / "current" / "VERSION").is_file()


def prepare_namenode(settings: Settings) -> None:
    """Write the configuration; format the NameNode on the first start only."""
    write_config(settings)
    if is_formatted(settings):
        return
    command = _command(settings, NAMENODE_CLASS, "-format", "-nonInteractive")
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **_env(settings)},
    )
    if result.returncode != 0 or not is_formatted(settings):
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise ServiceError(
            f"formatting the NameNode in {hdfs_dir(settings) / 'name'} failed "
            f"(exit {result.returncode}):\n{tail}"
        )
    log.info("formatted namenode", dir=str(hdfs_dir(settings) / "name"))


def namenode_spec(settings: Settings) -> ServiceSpec:
    return ServiceSpec(
        name="hdfs-namenode",
        command=_command(settings, NAMENODE_CLASS),
        health=partial(namenode_health, settings),
        run_dir=settings.paths.data_dir,
        env=_env(settings),
        prepare=partial(prepare_namenode, settings),
        start_timeout=120.0,
    )


def datanode_spec(settings: Settings) -> ServiceSpec:
    return ServiceSpec(
        name="hdfs-datanode",
        command=_command(settings, DATANODE_CLASS),
        health=partial(datanode_health, settings),
        run_dir=settings.paths.data_dir,
        env=_env(settings),
        prepare=partial(write_config, settings),
        start_timeout=120.0,
    )


class _NameNodeState:
    """What the NameNode's JMX says, or why it could not be read."""

    def __init__(self, settings: Settings, timeout: float) -> None:
        h = settings.hdfs
        self.where = f"NameNode at {h.namenode_host}:{h.namenode_http_port}"
        self.error = ""
        self.fs: dict[str, Any] = {}
        self.info: dict[str, Any] = {}
        try:
            self.fs = _jmx_bean(settings, "FSNamesystemState", timeout)
            self.info = _jmx_bean(settings, "NameNodeInfo", timeout)
        except requests.ConnectionError:
            self.error = f"{self.where} not answering"
            return
        except (requests.RequestException, ValueError, LookupError) as exc:
            self.error = f"{self.where}: JMX not readable ({exc})"
            return
        # The HTTP server (and JMX) starts before the RPC server; clients need the latter.
        if not _port_open(h.namenode_host, h.namenode_rpc_port, timeout):
            self.error = f"{self.where}: RPC port {h.namenode_rpc_port} not accepting yet"

    @property
    def up(self) -> bool:
        return not self.error

    @property
    def live_datanodes(self) -> int:
        return int(self.fs.get("NumLiveDataNodes", 0))

    @property
    def safemode(self) -> str:
        """Empty when the NameNode is out of safe mode, else its explanation."""
        return str(self.info.get("Safemode", "")).strip()

    def describe(self) -> str:
        if self.error:
            return self.error
        free_gib = int(self.fs.get("CapacityRemaining", 0)) / 2**30
        safemode = " ".join(self.safemode.split())  # one line, for logs and tables
        mode = f"in safe mode: {safemode}" if safemode else "not in safe mode"
        return (
            f"{self.where} up, {self.live_datanodes} live DataNode(s), "
            f"{free_gib:.1f} GiB free, {mode}"
        )


def _jmx_bean(settings: Settings, name: str, timeout: float) -> dict[str, Any]:
    h = settings.hdfs
    url = f"http://{h.namenode_host}:{h.namenode_http_port}/jmx"
    response = requests.get(
        url, params={"qry": f"Hadoop:service=NameNode,name={name}"}, timeout=timeout
    )
    response.raise_for_status()
    beans = response.json().get("beans", [])
    if not beans:
        raise LookupError(f"bean {name} not registered yet")
    return beans[0]


def _port_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def namenode_health(settings: Settings, timeout: float = 3.0) -> Health:
    """OK when the NameNode serves JMX and RPC.

    Safe mode does not count against it: a NameNode with blocks stays in safe mode until a
    DataNode reports them, so waiting for it here would deadlock a NameNode-then-DataNode start.
    The DataNode's health (and hdfs_health) require safe mode to be off.
    """
    state = _NameNodeState(settings, timeout)
    return Health(state.up, state.describe())


def datanode_health(settings: Settings, timeout: float = 3.0) -> Health:
    """OK when the NameNode counts at least one live DataNode and has left safe mode."""
    state = _NameNodeState(settings, timeout)
    return Health(state.up and state.live_datanodes >= 1 and not state.safemode, state.describe())


def hdfs_health(settings: Settings, timeout: float = 3.0) -> Health:
    """HDFS is usable: NameNode up, out of safe mode, at least one live DataNode."""
    return datanode_health(settings, timeout)
