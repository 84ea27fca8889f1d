"""spark-submit entry point: recompute the aggregate tables for a range of dates (batch).

    spark-submit spark/recompute_aggregates.py --start 2026-11-01 --end 2026-11-03 [--force]

Rewrites the ``window_date`` partitions ``--start``..``--end`` (UTC, inclusive) of
``events_agg_1m`` and ``events_agg_5m`` from the raw zone: raw minus late_events, one row per
event_id, then the streaming job's own aggregation (lakepulse.streaming.recompute). Idempotent:
run it again and the tables are the same. Refuses (exit 2) dates whose windows the streaming job
may still write, unless ``--force`` (for a stopped job). Prints a JSON line of rows per date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    import lakepulse  # noqa: F401  (pip-installed, editable)
except ModuleNotFoundError:  # fall back to the source tree next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from lakepulse.log import get_logger
from lakepulse.settings import get_settings
from lakepulse.spark_session import build_spark
from lakepulse.streaming.recompute import RecomputeRefused, recompute_to_lake

COMPONENT = "recompute_aggregates"
log = get_logger(COMPONENT)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=_date, required=True, help="first window date (UTC)")
    parser.add_argument("--end", type=_date, required=True, help="last window date (UTC)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="skip the check that the streaming job has closed these dates",
    )
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    spark = build_spark(settings, COMPONENT)
    try:
        written = recompute_to_lake(spark, settings, args.start, args.end, force=args.force)
    except RecomputeRefused as exc:
        log.error("refused", reason=str(exc), start=str(args.start), end=str(args.end))
        return 2
    except Exception as exc:  # Spark's analysis and py4j errors alike
        log.error("recompute failed", error=str(exc)[:4000])
        return 1
    finally:
        spark.stop()
    log.info("recomputed", start=str(args.start), end=str(args.end), rows=written)
    print(json.dumps({"start": str(args.start), "end": str(args.end), "rows": written}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
