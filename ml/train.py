"""spark-submit entry point: retrain the forecasters on trusted history (ml_retrain DAG).

    spark-submit ml/train.py --run-id RUN [--models linear_regression,gbt]
        [--test-fraction 0.2] [--sources a,b] [--reason drift]

Reads the curated events that passed data quality, trains every model kind, records each in
MLflow (parameters, metrics against seasonal-naive, lake snapshot, data-quality verdicts,
charts, model), registers the best as ``challenger`` and promotes it to ``champion`` only when
it beats the champion on the same test split. Prints the summary as one JSON line.
Exit 0: trained (promoted or not) or nothing to train on yet (it says so); 1: failed.
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
from lakepulse.ml.retrain import NothingToTrainOn, retrain
from lakepulse.ml.training import MODEL_KINDS, TrainingConfig
from lakepulse.settings import get_settings
from lakepulse.spark_session import build_spark

COMPONENT = "ml_train"
log = get_logger(COMPONENT)


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--models", type=_names, default=list(MODEL_KINDS))
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--sources", type=_names, default=[], help="only these sources")
    parser.add_argument("--reason", default="scheduled", help="why (kept as a tag)")
    args = parser.parse_args(argv)
    unknown = set(args.models) - set(MODEL_KINDS)
    if unknown or not args.models:
        parser.error(f"--models: unknown {sorted(unknown)}; known: {', '.join(MODEL_KINDS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    spark = build_spark(settings, COMPONENT)
    config = TrainingConfig(models=tuple(args.models), test_fraction=args.test_fraction)
    try:
        summary = retrain(spark, settings, args.run_id, config, args.sources or None, args.reason)
    except NothingToTrainOn as exc:
        # Not a failure: a fresh platform has no validated history yet; the run says so.
        log.warning("nothing to train on", reason=str(exc))
        print(json.dumps({"trained": False, "reason": str(exc)}))
        return 0
    except Exception as exc:
        log.error("training failed", error=str(exc)[:4000])
        raise
    finally:
        spark.stop()
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
