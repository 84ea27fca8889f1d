"""Run Lakepulse's online detector over the NAB corpus and score it with NAB's method.

Each series is read in time order and fed row by row to one
:class:`lakepulse.anomaly.AnomalyDetector`: ``score_one`` then ``learn_one``, so every score
depends only on the rows up to it. The detector fits its forecaster at the end of the series'
probationary period (NAB's allowed learning period) and refits itself as it goes.

Outputs ``<out>/<category>/<series>.csv`` (``timestamp,value,anomaly_score``, one line per data
row) and ``<out>/scores.json``: the three profiles' normalised scores on the development split
(the series in ``labels_dev_windows.json``), with thresholds, counts and the runtime.

    .venv/bin/python -m bench.nab                      # all 58 series, 2 worker processes
    .venv/bin/python -m bench.nab --series 'artificial*/*' --workers 1
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.nab import scoring
from lakepulse.anomaly import AnomalyDetector, DetectorConfig

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = Path(os.environ.get("LAKEPULSE_NAB_DIR", ROOT / ".." / "shared" / "data" / "nab"))
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
LABELS = "labels_dev_windows.json"


def read_series(path: Path) -> tuple[list[str], list[float]]:
    """``timestamp,value`` CSV -> timestamps (as written) and values; empty values are NaN."""
    timestamps: list[str] = []
    values: list[float] = []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)  # header
        for row in reader:
            timestamps.append(row[0])
            values.append(float(row[1]) if row[1].strip() else float("nan"))
    return timestamps, values


def detect(timestamps: list[str], values: list[float], config: DetectorConfig) -> list[float]:
    """Scores of one series, row by row, causally (score, then learn)."""
    detector = AnomalyDetector(config)
    scores = []
    for ts, value in zip(timestamps, values, strict=True):
        scores.append(detector.score_one(ts, value))
        detector.learn_one(ts, value)
    return scores


def run_series(job: tuple[Path, Path, str, DetectorConfig]) -> tuple[str, int, float]:
    """Worker: one series -> its results CSV. Returns (name, rows, seconds)."""
    data_dir, out_dir, name, base_config = job
    started = time.perf_counter()
    timestamps, values = read_series(data_dir / "data" / name)
    config = replace(base_config, warmup=max(scoring.probation_rows(len(values)), 1))
    scores = detect(timestamps, values, config)
    target = out_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for ts, value, score in zip(timestamps, values, scores, strict=True):
            writer.writerow([ts, repr(value), f"{score:.6f}"])
    return name, len(values), time.perf_counter() - started


def list_series(data_dir: Path, patterns: list[str] | None, limit: int | None) -> list[str]:
    root = data_dir / "data"
    names = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.csv"))
    if patterns:
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]
    return names[:limit] if limit else names


def score_dev(data_dir: Path, out_dir: Path, names: list[str]) -> dict:
    """NAB scores of the development series among ``names`` (from their results CSVs)."""
    labels = json.loads((data_dir / LABELS).read_text())
    corpus = {}
    for name in names:
        if name not in labels:
            continue
        with (out_dir / name).open(newline="") as f:
            rows = list(csv.reader(f))[1:]
        timestamps = np.array([r[0] for r in rows], dtype="datetime64[us]")
        scores = np.array([float(r[2]) for r in rows])
        corpus[name] = (scores, scoring.window_indices(timestamps, labels[name]))
    if not corpus:
        return {}
    results = scoring.score_corpus(corpus)
    return {
        "series": len(corpus),
        "windows": sum(len(w) for _, w in corpus.values()),
        "rows": int(sum(len(s) for s, _ in corpus.values())),
        "scores": {name: round(r.score, 2) for name, r in results.items()},
        "profiles": {
            name: {
                **{k: v for k, v in asdict(r).items() if k != "profile"},
                **scoring.detection_counts(corpus, r.threshold),
            }
            for name, r in results.items()
        },
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.nab", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA, help="holds data/ and the labels file"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--series", nargs="*", help="glob(s) on '<category>/<file>.csv'")
    parser.add_argument("--limit", type=int, help="run only the first N series (sorted)")
    parser.add_argument("--workers", type=int, default=2, help="processes (1: in this process)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = list_series(args.data_dir, args.series, args.limit)
    if not names:
        print(f"no series found under {args.data_dir / 'data'}")
        return 1
    config = DetectorConfig()
    started = time.perf_counter()
    # Longest first, so the two workers finish together.
    sizes = {n: (args.data_dir / "data" / n).stat().st_size for n in names}
    jobs = [(args.data_dir, args.out, n, config) for n in sorted(names, key=lambda n: -sizes[n])]
    per_series: dict[str, tuple[int, float]] = {}
    with tqdm(total=len(jobs), unit="series", desc="NAB") as bar:
        if args.workers <= 1:
            for name, rows, seconds in map(run_series, jobs):
                per_series[name] = (rows, seconds)
                bar.update()
        else:
            with ProcessPoolExecutor(args.workers) as pool:
                for done in as_completed([pool.submit(run_series, job) for job in jobs]):
                    name, rows, seconds = done.result()
                    per_series[name] = (rows, seconds)
                    bar.update()
    detect_seconds = time.perf_counter() - started
    dev = score_dev(args.data_dir, args.out, names)
    summary = {
        "dev": dev.get("scores", {}),
        "dev_detail": dev,
        "command": " ".join(["python -m bench.nab", *(argv if argv is not None else sys.argv[1:])]),
        "series_run": len(names),
        "rows_run": sum(rows for rows, _ in per_series.values()),
        "runtime_seconds": round(time.perf_counter() - started, 1),
        "detect_seconds": round(detect_seconds, 1),
        "slowest_series_seconds": round(max(s for _, s in per_series.values()), 1),
        "workers": args.workers,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "detector_config": {**asdict(config), "warmup": "each series' NAB probationary period"},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scores.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({"dev": summary["dev"], "runtime_seconds": summary["runtime_seconds"]}))
    return 0
