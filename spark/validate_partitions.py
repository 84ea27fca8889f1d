"""spark-submit entry point: validate the lake's newly closed partitions (data_quality DAG).

    spark-submit spark/validate_partitions.py --run-id RUN \\
        [--partition events/event_date=2026-11-25 ...] [--partitions-json '[...]']

Without ``--partition`` it validates every partition the streaming job has closed and nobody
has judged yet; with it, exactly those (again, e.g. to release a repaired one). Each failed
partition is quarantined; every verdict is recorded in HDFS (lakepulse.quality.verdicts), and
the Kafka offsets consumed are reconciled with the rows landed. Writes the run's summary to
``<lake>/_quality/runs/<run>.json`` and prints it as one JSON line. Exit 0 when the run itself
worked, whatever the verdicts (the DAG's alert task reports them); 1 when it could not run.
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

from lakepulse.log import get_logger
from lakepulse.quality.partitions import Partition
from lakepulse.quality.runs import run_summary_path
from lakepulse.quality.validate import Validator, reconcile_offsets, validate_pending
from lakepulse.settings import get_settings
from lakepulse.spark_session import build_spark
from lakepulse.webhdfs import WebHdfs

COMPONENT = "validate_partitions"
log = get_logger(COMPONENT)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True, help="the Airflow run id (names the results)")
    parser.add_argument(
        "--partition",
        action="append",
        type=Partition.parse,
        help="validate this partition (<table>/<column>=<date>); repeatable",
    )
    parser.add_argument(
        "--partitions-json",
        default="[]",
        help="the same as a JSON list, e.g. '[\"events/event_date=2026-11-25\"]'",
    )
    parser.add_argument(
        "--no-reconcile", action="store_true", help="skip the Kafka offsets reconciliation"
    )
    args = parser.parse_args(argv)
    try:
        listed = [Partition.parse(key) for key in json.loads(args.partitions_json)]
    except (ValueError, TypeError) as exc:
        parser.error(f"--partitions-json: {exc}")
    args.partition = (args.partition or []) + listed or None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    spark = build_spark(settings, COMPONENT)
    try:
        judged = validate_pending(spark, settings, args.run_id, args.partition)
        reconciliation = None
        if not args.no_reconcile:
            validator = Validator(spark, settings, args.run_id)
            checked = reconcile_offsets(validator)
            validator.build_docs()
            if checked is not None:
                passed, failures, rows = checked
                reconciliation = {
                    "passed": passed,
                    "failures": [f.describe() for f in failures],
                    "partitions": rows,
                }
    except Exception as exc:  # Spark's analysis and py4j errors alike
        log.error("validation run failed", error=str(exc)[:4000])
        return 1
    finally:
        spark.stop()
    summary = {
        "run_id": args.run_id,
        "validated": len(judged),
        "failed": [v.partition for v in judged if not v.passed],
        "verdicts": [json.loads(v.to_json()) for v in judged],
        "reconciliation": reconciliation,
    }
    WebHdfs(settings.hdfs).write_text(
        run_summary_path(settings, args.run_id), json.dumps(summary, default=str)
    )
    log.info("validation run done", validated=len(judged), failed=summary["failed"],
             reconciled=None if reconciliation is None else reconciliation["passed"])  # fmt: skip
    print(json.dumps({k: summary[k] for k in ("run_id", "validated", "failed")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
