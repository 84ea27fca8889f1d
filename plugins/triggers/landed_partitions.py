"""An event trigger that fires when the streaming job has landed (closed) new partitions.

Used as an Asset watcher: the triggerer runs it continuously, and each event it yields marks
the asset ``lakepulse_landed_partitions`` as updated, which starts ``data_quality``. It looks
every ``poll_seconds`` for partitions the stream has closed and nobody has judged yet
(lakepulse.quality.validate.pending_partitions) and fires once per new set of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent


class LandedPartitionsTrigger(BaseEventTrigger):
    def __init__(self, poll_seconds: float = 60.0) -> None:
        super().__init__()
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"poll_seconds": self.poll_seconds})  # fmt: skip

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from lakepulse.quality.validate import pending_partitions
        from lakepulse.settings import get_settings
        from lakepulse.webhdfs import WebHdfs

        settings = get_settings()
        client = WebHdfs(settings.hdfs, timeout=10.0)
        announced: set[str] = set()
        while True:
            try:
                pending = await asyncio.to_thread(pending_partitions, client, settings)
            except Exception as exc:  # HDFS away for a moment: look again next time
                self.log.warning("cannot list landed partitions: %s", exc)
                pending = []
            new = sorted(p.key for p in pending if p.key not in announced)
            if new:
                announced.update(new)
                self.log.info("new partitions landed: %s", new)
                yield TriggerEvent({"partitions": new})
            await asyncio.sleep(self.poll_seconds)
