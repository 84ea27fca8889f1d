"""Hooks that turn Airflow connections into the endpoints Lakepulse's library code takes.

Thin on purpose: the checks and clients they hand out are plain code, tested on its own.
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from lakepulse.settings import HdfsSettings
from lakepulse.webhdfs import WebHdfs


class LakepulseWebHdfsHook(BaseHook):
    """WebHDFS client and NameNode URL from a ``webhdfs`` connection (host, port, login)."""

    conn_name_attr = "webhdfs_conn_id"
    default_conn_name = "lakepulse_webhdfs"
    conn_type = "webhdfs"
    hook_name = "Lakepulse WebHDFS"

    def __init__(self, webhdfs_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.webhdfs_conn_id = webhdfs_conn_id

    def _hdfs_settings(self) -> HdfsSettings:
        conn = self.get_connection(self.webhdfs_conn_id)
        return HdfsSettings(
            namenode_host=conn.host, namenode_http_port=int(conn.port or 9870),
            user=conn.login or HdfsSettings.user,
        )  # fmt: skip

    def get_conn(self) -> WebHdfs:
        return WebHdfs(self._hdfs_settings())

    def namenode_http_url(self) -> str:
        hdfs = self._hdfs_settings()
        return f"http://{hdfs.namenode_host}:{hdfs.namenode_http_port}"


class HttpEndpointHook(BaseHook):
    """Base URL of an HTTP service (MLflow, Airflow's API server) from an ``http`` connection."""

    conn_name_attr = "http_conn_id"
    default_conn_name = "lakepulse_mlflow"
    conn_type = "http"
    hook_name = "Lakepulse HTTP endpoint"

    def __init__(self, http_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.http_conn_id = http_conn_id

    def base_url(self) -> str:
        conn = self.get_connection(self.http_conn_id)
        port = f":{conn.port}" if conn.port else ""
        return f"{conn.schema or 'http'}://{conn.host}{port}"
