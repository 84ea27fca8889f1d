"""Propose each source's value range and distribution from history, for review.

``lakepulse quality profile`` reads the curated ``events`` (the partitions that passed
validation, or all of them before any has) and writes a JSON proposal: per source its row
count, min/max, mean and standard deviation, 1st/50th/99th percentiles, and the range a value
must stay in (``low``/``high``: the observed min/max widened by ``margin`` of their span).
A person reviews the diff and checks it in as ``expectations/profiles/events_sources.json``:
the value-range and distribution expectations read it from there.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# How far beyond the history's min/max a value may go, as a share of the span (or of the
# value itself for a constant series).
DEFAULT_MARGIN = 0.25


class ProfileError(RuntimeError):
    """The profile file is missing or unreadable."""


def propose_profile(
    events: DataFrame, *, margin: float = DEFAULT_MARGIN, learned_from: dict[str, Any]
) -> dict[str, Any]:
    """Per-source statistics of ``events`` (needs ``source`` and ``value``) and allowed ranges."""
    from pyspark.sql import functions as F

    value = F.col("value").cast("double")
    rows = (
        events.where(value.isNotNull() & ~F.isnan(value))
        .groupBy("source")
        .agg(
            F.count(value).alias("rows"),
            F.min(value).alias("min"),
            F.max(value).alias("max"),
            F.avg(value).alias("mean"),
            F.stddev_pop(value).alias("std"),
            F.percentile_approx(value, [0.01, 0.5, 0.99], 10_000).alias("quantiles"),
        )
        .orderBy("source")
        .collect()
    )
    sources = {}
    for row in rows:
        span = row["max"] - row["min"]
        widen = margin * (span if span > 0 else max(abs(row["max"]), 1.0))
        p01, p50, p99 = row["quantiles"]
        sources[row["source"]] = {
            "rows": row["rows"],
            "min": row["min"],
            "max": row["max"],
            "mean": row["mean"],
            "std": row["std"],
            "p01": p01,
            "p50": p50,
            "p99": p99,
            "low": row["min"] - widen,
            "high": row["max"] + widen,
        }
    return {
        "proposed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "margin": margin,
        "learned_from": learned_from,
        "sources": sources,
    }


def load_profile(path: Path) -> dict[str, Any]:
    try:
        profile = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError(
            f"no source profile at {path}. Propose one with `lakepulse quality profile --out "
            f"{path}`, review it and check it in (or set LAKEPULSE__QUALITY__PROFILE_PATH)."
        ) from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"the source profile {path} is not valid JSON: {exc}") from exc
    if not isinstance(profile.get("sources"), dict):
        raise ProfileError(f"the source profile {path} has no 'sources' mapping")
    return profile


def write_profile(profile: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile, indent=2, sort_keys=True) + "\n")
