"""Which events are late: Spark's watermark rule, decided once, when an event is ingested.

Spark's rule, reproduced exactly (``tests/test_streaming_pipeline.py`` checks it against
Spark's own ``numRowsDroppedByWatermark``): in micro-batch N the watermark is
``max(event_time over batches 0..N-1) - delay`` (the epoch before any event was seen; it never
moves back), and a row whose ``event_time <= watermark`` is late. Spark's stateful operators
drop such rows without a trace; here the raw ingestion query stamps every valid event with the
watermark in force when it arrived and a ``late`` flag, so that lateness is a recorded fact of
the raw zone instead of a side effect of some query's batch boundaries:

- ``late_events`` is exactly the raw rows with ``late``; ``events`` and the aggregates are built
  from the others only;
- every downstream query reads whole raw batches in order (a file stream over the raw sink,
  without ``maxFilesPerTrigger``), so its own watermark is never ahead of the one stamped here
  and Spark drops nothing more there (their ``numRowsDroppedByWatermark`` stays 0; the job's
  heartbeat reports it).

The running maximum lives in the raw query's state store (one key), so a replayed batch is
judged against the same watermark again. Executors get the stamping function by value: they
need pandas and pyarrow (pyspark's own requirements), not the lakepulse package.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

if TYPE_CHECKING:
    import pandas as pd

LATE_COLUMN = "late"
WATERMARK_COLUMN = "watermark"

_KEY = "_lateness_key"
_MILLIS = "_event_millis"
_WATERMARK_MS = "_watermark_ms"

_UNIT_MS = {
    "millisecond": 1,
    "second": 1_000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 7 * 86_400_000,
}
_PART = re.compile(r"(\d+)\s*([a-z]+?)s?\b")


def parse_delay_ms(delay: str) -> int:
    """Milliseconds of a watermark delay in Spark's interval words ("10 minutes", "1 hour 30
    minutes"). Months and years are refused: Spark counts a month as 31 days."""
    text = delay.strip().lower().removeprefix("interval").strip()
    parts = list(_PART.finditer(text))
    if not parts or "".join(m.group(0) for m in parts).replace(" ", "") != text.replace(" ", ""):
        raise ValueError(
            f"watermark delay {delay!r} is not like '10 minutes' or '1 hour 30 minutes' "
            f"(units: {', '.join(_UNIT_MS)})"
        )
    total = 0
    for match in parts:
        unit = match.group(2)
        if unit not in _UNIT_MS:
            raise ValueError(
                f"watermark delay {delay!r}: unit {unit!r} is not one of {', '.join(_UNIT_MS)}"
            )
        total += int(match.group(1)) * _UNIT_MS[unit]
    return total


def batch_watermark_ms(previous_max_ms: int | None, delay_ms: int) -> int:
    """The watermark (ms since the epoch) for a batch, given the max event time before it."""
    if previous_max_ms is None:
        return 0  # Spark starts at the epoch too
    return max(0, previous_max_ms - delay_ms)


def late_mask(event_ms: pd.Series, watermark_ms: int) -> pd.Series:
    """Spark drops a row when its event time is at or before the watermark."""
    return event_ms <= watermark_ms


def judge_batches(batches: list[list[int]], delay_ms: int) -> list[list[bool]]:
    """The rule over a sequence of batches of event times (ms): which rows are late."""
    import pandas as pd

    previous: int | None = None
    verdicts = []
    for batch in batches:
        millis = pd.Series(batch, dtype="int64")
        verdicts.append(late_mask(millis, batch_watermark_ms(previous, delay_ms)).tolist())
        if batch:
            previous = max(batch) if previous is None else max(previous, *batch)
    return verdicts


def _stamper(delay_ms: int) -> Any:
    """The applyInPandasWithState function: one group (all rows of a batch), state = max ms."""

    def stamp(key: Any, frames: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
        previous = int(state.get[0]) if state.exists else None
        watermark = batch_watermark_ms(previous, delay_ms)
        batch_max = previous
        for frame in frames:
            millis = frame[_MILLIS]
            out = frame.drop(columns=[_KEY, _MILLIS])
            out[LATE_COLUMN] = late_mask(millis, watermark)
            out[_WATERMARK_MS] = watermark
            if len(millis):
                top = int(millis.max())
                batch_max = top if batch_max is None else max(batch_max, top)
            yield out
        if batch_max is not None and batch_max != previous:
            state.update((batch_max,))

    return stamp


def stamp_lateness(events: DataFrame, delay: str) -> DataFrame:
    """A stream of valid events plus ``late`` and ``watermark`` (a streaming DataFrame only).

    All rows go through one state key (the watermark is global, like Spark's) and so through
    one pandas call per batch. Timestamps cross to pandas as microsecond integers, so nothing
    depends on the session time zone or pandas' datetime units.
    """
    from pyspark import cloudpickle
    from pyspark.sql.streaming.state import GroupStateTimeout

    # Executors unpickle the stamping function without importing lakepulse.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    delay_ms = parse_delay_ms(delay)
    times = [f.name for f in events.schema.fields if isinstance(f.dataType, T.TimestampType)]
    prepared = events.select(
        *[F.unix_micros(F.col(c)).alias(c) if c in times else F.col(c) for c in events.columns],
        F.lit(0).alias(_KEY),
        F.unix_millis(F.col("event_time")).alias(_MILLIS),
    )
    passed = T.StructType(
        [
            T.StructField(f.name, T.LongType() if f.name in times else f.dataType, True)
            for f in events.schema.fields
        ]
        + [
            T.StructField(LATE_COLUMN, T.BooleanType(), False),
            T.StructField(_WATERMARK_MS, T.LongType(), False),
        ]
    )
    stamped = prepared.groupBy(_KEY).applyInPandasWithState(
        _stamper(delay_ms),
        outputStructType=passed,
        stateStructType="max_event_ms long",
        outputMode="append",
        timeoutConf=GroupStateTimeout.NoTimeout,
    )
    return stamped.select(
        *[
            F.timestamp_micros(F.col(c)).alias(c) if c in times else F.col(c)
            for c in events.columns
        ],
        F.col(LATE_COLUMN),
        F.timestamp_millis(F.col(_WATERMARK_MS)).alias(WATERMARK_COLUMN),
    )
