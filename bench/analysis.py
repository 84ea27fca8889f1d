"""Pure arithmetic of the benchmark: which rows belong to a step, latencies, rates, verdicts.

Rows are identified by their Kafka partition and offset. A step's rows are the offsets its
producer added to the events topic, ``{partition: (first, end)}``, read from the topic's end
offsets before and after the step (only the step's producer writes to the topic).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Ranges = Mapping[int, tuple[int, int]]  # partition -> [first offset, end offset)

SUSTAINED = "sustained"
PRODUCER_LIMITED = "producer-limited"
FELL_BEHIND = "fell behind"
# The producer must deliver this share of the offered rate for a step to test that rate.
PRODUCER_TOLERANCE = 0.9


def step_ranges(before: Mapping[int, int], after: Mapping[int, int]) -> dict[int, tuple[int, int]]:
    return {p: (before.get(p, 0), end) for p, end in after.items() if end > before.get(p, 0)}


def range_size(ranges: Ranges) -> int:
    return sum(end - first for first, end in ranges.values())


def in_ranges(partition: np.ndarray, offset: np.ndarray, ranges: Ranges) -> np.ndarray:
    mask = np.zeros(len(offset), dtype=bool)
    for p, (first, end) in ranges.items():
        mask |= (partition == p) & (offset >= first) & (offset < end)
    return mask


def lookup_produced(
    partition: np.ndarray,
    offset: np.ndarray,
    raw_partition: np.ndarray,
    raw_offset: np.ndarray,
    raw_produced: np.ndarray,
    ranges: Ranges,
) -> np.ndarray:
    """Production times of rows (by partition and offset) from the raw rows; NaN if unknown."""
    produced = np.full(len(offset), np.nan)
    for p, (first, end) in ranges.items():
        table = np.full(end - first, np.nan)
        raw = (raw_partition == p) & (raw_offset >= first) & (raw_offset < end)
        table[raw_offset[raw] - first] = raw_produced[raw]
        rows = (partition == p) & (offset >= first) & (offset < end)
        produced[rows] = table[offset[rows] - first]
    return produced


def latency_stats(latencies: np.ndarray) -> dict[str, float | None]:
    """p50, p99, max and mean in seconds (None when there is nothing to measure)."""
    known = latencies[~np.isnan(latencies)]
    if len(known) == 0:
        return {"p50_s": None, "p99_s": None, "max_s": None, "mean_s": None}
    p50, p99 = np.percentile(known, [50, 99])
    return {
        "p50_s": round(float(p50), 3),
        "p99_s": round(float(p99), 3),
        "max_s": round(float(known.max()), 3),
        "mean_s": round(float(known.mean()), 3),
    }


def visible_rate(seen_at: np.ndarray) -> float | None:
    """Rows made visible per second, from batch to batch (None with fewer than two sightings).

    Rows become visible a batch at a time. The first sighting's rows arrived before the clock
    starts (they carry the pipeline's latency, not its rate) and the last one is usually a
    partial batch (the producer stopped during it), so both are left out when there are
    three sightings or more: the interior batches over the time between the first and the
    next-to-last sighting. That is the offered rate when the pipeline keeps up, and its
    capacity when it does not (the interior batches are then full, drain included).
    """
    times, counts = np.unique(seen_at, return_counts=True)
    if len(times) < 2:
        return None
    if len(times) == 2:
        return float(counts[1] / (times[1] - times[0]))
    return float(counts[1:-1].sum() / (times[-2] - times[0]))


def lag_growth(lag_after_batches: Sequence[tuple[float, int]]) -> int:
    """How much the lag right after a batch landed grew from the first batch to the last.

    Right after a batch lands the lag is at its low point (what arrived during that batch);
    a pipeline that keeps up comes back to the same low point every batch.
    """
    if len(lag_after_batches) < 2:
        return 0
    return int(lag_after_batches[-1][1] - lag_after_batches[0][1])


def classify(
    offered: float,
    producer_rate: float,
    expected_rows: int,
    visible_rows: int,
    drain_s: float | None,
    drain_limit_s: float,
    growth: int,
    growth_limit: int,
) -> tuple[str, str]:
    """(verdict, why): sustained, producer-limited or fell behind."""
    if producer_rate < PRODUCER_TOLERANCE * offered:
        return PRODUCER_LIMITED, (
            f"the producer delivered {producer_rate:,.0f}/s of {offered:,.0f}/s offered"
        )
    if visible_rows < expected_rows:
        return FELL_BEHIND, (
            f"{expected_rows - visible_rows:,} of {expected_rows:,} events not visible "
            f"{drain_limit_s:.0f}s after the producer stopped"
        )
    if drain_s is not None and drain_s > drain_limit_s:
        return FELL_BEHIND, f"the last events took {drain_s:.0f}s to show after the producer ended"
    if growth > growth_limit:
        return FELL_BEHIND, f"the lag after each batch grew by {growth:,} events during the step"
    return SUSTAINED, "every event visible, lag bounded"


def ratio(value: float | None, reference: float | None) -> float | None:
    if not value or not reference:
        return None
    return round(value / reference, 4)


def highest_sustained(steps: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    sustained = [s for s in steps if s["verdict"] == SUSTAINED]
    return max(sustained, key=lambda s: s["offered_rate"], default=None)
