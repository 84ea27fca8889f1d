"""spark-submit entry point: compact the closed partitions of the curated and aggregate tables.

    spark-submit spark/compact_lake.py [--older-than-days 2] [--min-files 4] [--table events]

Prints a JSON line of what was compacted (see lakepulse.streaming.compaction).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    import lakepulse  # noqa: F401  (pip-installed, editable)
except ModuleNotFoundError:  # fall back to the source tree next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from lakepulse.settings import get_settings
from lakepulse.spark_session import build_spark
from lakepulse.streaming.compaction import compact_lake


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--older-than-days", type=int, default=2,
                        help="compact dates this many days before today (UTC)")  # fmt: skip
    parser.add_argument("--min-files", type=int, default=4,
                        help="leave partitions with fewer files alone")  # fmt: skip
    parser.add_argument("--table", action="append", help="only these tables (repeatable)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    spark = build_spark(get_settings(), "compact_lake")
    try:
        done = compact_lake(spark, get_settings(), older_than_days=args.older_than_days,
                            min_files=args.min_files, tables=args.table)  # fmt: skip
    finally:
        spark.stop()
    print(json.dumps(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
