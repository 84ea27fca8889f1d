"""Sensor: wait until the streaming job is NOT running, so that it can be (re)started."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseSensorOperator

from hooks.lakepulse_hooks import LakepulseWebHdfsHook
from lakepulse.streaming_status import current_state


class StreamingJobDownSensor(BaseSensorOperator):
    """Succeeds when the job's heartbeat is missing, stale, or its driver process is gone.

    The reason is pushed as the task's return value (XCom), so every (re)start of the job is
    recorded with why it was needed.
    """

    template_fields = ("status_dir",)

    def __init__(self, *, status_dir: str, heartbeat_timeout: float,
                 webhdfs_conn_id: str = "lakepulse_webhdfs", **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.status_dir = status_dir
        self.heartbeat_timeout = heartbeat_timeout
        self.webhdfs_conn_id = webhdfs_conn_id
        self._reason = ""

    def poke(self, context: Any) -> bool:
        client = LakepulseWebHdfsHook(self.webhdfs_conn_id).get_conn()
        state = current_state(client, self.status_dir, self.heartbeat_timeout)
        self.log.info("streaming job %s: %s", "alive" if state.alive else "down", state.reason)
        self._reason = state.reason
        return not state.alive

    def execute(self, context: Any) -> str:
        super().execute(context)
        return self._reason
