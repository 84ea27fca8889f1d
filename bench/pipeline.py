"""Benchmark of the streaming pipeline: Kafka -> Spark -> the lake, end to end, on this machine.

    .venv/bin/python -m bench.pipeline [--rates 2000,5000,...] [--step-seconds 60] ...

Starts a private Kafka + HDFS (bench/out/data, ports +22000), then, in one run:

1. references: Kafka's ProducerPerformance and ConsumerPerformance (the broker's jars) on a
   scratch topic of real events, Lakepulse's own producer unthrottled, and Spark reading that
   topic into the no-op sink through the job's parsing (``parse_kafka_records``);
2. the ingest job (the same spark-submit Airflow runs), fed by Lakepulse's producer at
   increasing rates, each for a bounded time: the sustained rate at which events become
   visible in the curated ``events`` table (``raw_events`` when there is none) and the latency
   from produced to visible (p50/p99). The ladder stops at the first rate not sustained.

Writes bench/RESULTS.md and bench/out/results.json, stops everything it started, and keeps to
``--budget-minutes`` (25 by default) overall.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in {None, ""}:  # `python bench/pipeline.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import analysis, cpu, deployment, kafka_tools, ladder, report
from bench.lake_watch import CURATED, RAW, LakeWatch
from lakepulse.lake import curated_events_path
from lakepulse.services import kafka
from lakepulse.settings import PROJECT_ROOT, Settings, SparkSettings

BENCH_DIR = Path(__file__).resolve().parent
PERF_TOPIC = "bench-perf"
PRODUCER_TOPIC = "bench-lakepulse-producer"
TEARDOWN_RESERVE_S = 90.0


class Clock:
    """Elapsed time and the overall deadline; ``say`` prints progress stamped with both."""

    def __init__(self, budget_s: float) -> None:
        self.started = time.monotonic()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return self.budget_s - TEARDOWN_RESERVE_S - self.elapsed()

    def say(self, message: str) -> None:
        minutes, seconds = divmod(int(self.elapsed()), 60)
        print(f"[{minutes:02d}:{seconds:02d}] {message}", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = SparkSettings()
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rates",
        default="2000,5000,10000,20000,40000",
        help="offered rates, events/s, comma-separated, ascending",
    )
    parser.add_argument("--step-seconds", type=float, default=60.0, help="production per step")
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=20.0,
        help="unreported first step at the lowest rate (0: none)",
    )
    parser.add_argument(
        "--perf-records",
        type=int,
        default=1_000_000,
        help="records for Kafka's perf tools and Spark's no-op read",
    )
    parser.add_argument(
        "--producer-records",
        type=int,
        default=500_000,
        help="events for Lakepulse's producer, unthrottled",
    )
    parser.add_argument(
        "--sources", type=int, default=58, help="synthetic sources (keys); 58 like the NAB replay"
    )
    parser.add_argument("--trigger-seconds", type=int, default=defaults.trigger_seconds)
    parser.add_argument(
        "--max-offsets-per-trigger", type=int, default=defaults.max_offsets_per_trigger
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.25,
        help="seconds between two listings of the lake's tables",
    )
    parser.add_argument("--budget-minutes", type=float, default=25.0, help="whole run at most")
    parser.add_argument(
        "--code",
        default="worktree",
        help="what the ingest job runs: the checkout as it is (worktree, the default) or a "
        "commit (HEAD, a hash), exported with git archive",
    )
    parser.add_argument(
        "--note", action="append", default=[], help="a caveat to add to RESULTS.md (repeatable)"
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: write --results again from this results.json",
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep Kafka's and HDFS's data after the run"
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args(argv)
    args.rate_list = sorted(float(r) for r in args.rates.split(",") if r.strip())
    if not args.rate_list:
        parser.error("--rates needs at least one rate")
    return args


def command_line() -> str:
    """The command as typed, with the interpreter relative to the project root."""
    argv = list(getattr(sys, "orig_argv", sys.argv))
    with contextlib.suppress(ValueError):  # an interpreter outside the project stays as is
        argv[0] = str(Path(argv[0]).absolute().relative_to(PROJECT_ROOT))
    return shlex.join(argv)


# References -------------------------------------------------------------------------------


def _guarded(clock: Clock, what: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; a failure is recorded (and printed), not raised."""
    clock.say(f"{what} ...")
    try:
        result = run()
    except Exception as exc:
        clock.say(f"{what} FAILED: {exc}")
        return {"name": what, "rate": None, "error": str(exc)[:2000]}
    clock.say(f"{what}: {result['rate']:,.0f} events/s ({result.get('detail', '')})")
    return result


def kafka_producer_ref(
    settings: Settings, args: argparse.Namespace, payloads: Path, clock: Clock
) -> dict[str, Any]:
    perf = kafka_tools.producer_performance(
        settings, PERF_TOPIC, args.perf_records, payloads,
        timeout=min(600, clock.remaining()), log=args.out / "logs" / "producer-performance.log",
    )  # fmt: skip
    return {
        "name": "Kafka ProducerPerformance (Lakepulse's producer settings, unthrottled)",
        "rate": perf.records_per_s,
        "detail": f"{perf.records:,} records, {perf.mb_per_s} MB/s, send-to-ack latency p50 "
        f"{perf.latency_p50_ms:.0f} ms, p99 {perf.latency_p99_ms:.0f} ms",
        "raw": kafka_tools.as_dict(perf),
    }


def kafka_consumer_ref(
    settings: Settings, args: argparse.Namespace, clock: Clock
) -> dict[str, Any]:
    perf = kafka_tools.consumer_performance(
        settings, PERF_TOPIC, args.perf_records,
        timeout=min(600, clock.remaining()), log=args.out / "logs" / "consumer-performance.log",
    )  # fmt: skip
    return {
        "name": "Kafka ConsumerPerformance (fetch rate)",
        "rate": perf.fetch_records_per_s,
        "detail": f"{perf.records:,} records; {perf.records_per_s:,.0f} events/s over the "
        f"whole run including the group join; {perf.mb_per_s} MB/s",
        "raw": kafka_tools.as_dict(perf),
    }


def lakepulse_producer_ref(
    settings: Settings, args: argparse.Namespace, clock: Clock
) -> dict[str, Any]:
    kafka.ensure_topics(settings, {PRODUCER_TOPIC: (settings.kafka.events_partitions, {})})
    command = [
        str(Path(sys.executable).parent / "lakepulse"),
        "produce",
        "--synthetic",
        "--speedup",
        "0",
        "--limit",
        str(args.producer_records),
        "--sources-count",
        str(args.sources),
        "--topic",
        PRODUCER_TOPIC,
        "--no-progress",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=min(600, clock.remaining()), check=True
    )
    produced = json.loads(done.stdout)
    return {
        "name": "Lakepulse producer (Python, confluent-kafka, synthetic events, unpaced)",
        "rate": float(produced["events_per_s"]),
        "detail": f"{produced['delivered']:,} events in {produced['elapsed_s']} s, one process",
        "raw": produced,
    }


def spark_noop_refs(settings: Settings, clock: Clock, log: Path) -> dict[str, dict[str, Any]]:
    command = [sys.executable, "-m", "bench.spark_noop", "--topic", PERF_TOPIC]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=min(900, clock.remaining()),
        check=False,
    )
    log.write_text(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"bench.spark_noop exit {done.returncode}: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    name = "Spark Kafka source -> noop sink, availableNow, {}"

    def ref(key: str, label: str) -> dict[str, Any]:
        part = result[key]
        return {
            "name": name.format(label),
            "rate": part["batch_rows_per_s"],
            "detail": f"{part['rows']:,} events in {part['batches']} batches of "
            f"{part['batch_seconds']} s in all; {part['rows_per_s']:,.0f} events/s over the "
            f"query's {part['seconds']} s from start to end",
            "raw": {**part, "session_start_s": result["session_start_s"]},
        }

    return {
        "spark_noop": ref("parsed", "`parse_kafka_records` (the job's parsing)"),
        "spark_noop_unparsed": ref("unparsed", "no parsing (run first)"),
    }


def references(
    settings: Settings, args: argparse.Namespace, out: Path, clock: Clock
) -> tuple[dict[str, Any], float]:
    payloads = out / "payloads.txt"
    event_bytes = kafka_tools.write_payloads(settings, payloads)
    clock.say(f"payload file: 10,000 synthetic events, {event_bytes:.0f} bytes on average")
    kafka.ensure_topics(settings, {PERF_TOPIC: (settings.kafka.events_partitions, {})})
    refs = {
        "kafka_producer": _guarded(
            clock,
            "Kafka ProducerPerformance",
            lambda: kafka_producer_ref(settings, args, payloads, clock),
        ),
        "kafka_consumer": _guarded(
            clock, "Kafka ConsumerPerformance", lambda: kafka_consumer_ref(settings, args, clock)
        ),
        "lakepulse_producer": _guarded(
            clock,
            "Lakepulse producer, unpaced",
            lambda: lakepulse_producer_ref(settings, args, clock),
        ),
    }
    clock.say("Spark no-op reads (session start ~20 s) ...")
    try:
        noop = spark_noop_refs(settings, clock, out / "logs" / "spark-noop.log")
    except Exception as exc:
        clock.say(f"Spark no-op read FAILED: {exc}")
        noop = {"spark_noop": {"name": "Spark no-op read", "rate": None, "error": str(exc)}}
    for ref in noop.values():
        if ref.get("rate") is not None:
            clock.say(f"{ref['name']}: {ref['rate']:,.0f} events/s ({ref['detail']})")
    return {**refs, **noop}, event_bytes


# The pipeline -----------------------------------------------------------------------------


def step_cost(settings: Settings, seconds: float) -> float:
    """Worst-case wall time of a step: production (with the producer's overrun) and drain."""
    return seconds * 1.5 + 15 + ladder.drain_limit(settings) + 10


def climb(
    ctx: ladder.StepContext, args: argparse.Namespace, clock: Clock, steps: list[dict[str, Any]]
) -> list[str]:
    """One step per rate into ``steps``, until one is not sustained; returns notes on the rest.

    Raises ladder.JobDied when the job ends (``steps`` then holds the steps done).
    """
    for index, rate in enumerate(args.rate_list, start=1):
        rest = ", ".join(f"{r:,.0f}" for r in args.rate_list[index - 1 :])
        if clock.remaining() < step_cost(ctx.settings, args.step_seconds):
            clock.say(f"not enough time left for {rate:,.0f}/s: stopping the ladder")
            return [f"rates {rest}/s not run: out of the time budget"]
        step = ladder.run_step(ctx, rate, args.step_seconds, index, f"{rate:,.0f}/s")
        steps.append(step)
        if step["verdict"] != analysis.SUSTAINED:
            higher = ", ".join(f"{r:,.0f}" for r in args.rate_list[index:])
            return [f"rates {higher}/s not run: {rate:,.0f}/s was not sustained"] if higher else []
    return []


def choose_primary(ctx: ladder.StepContext) -> list[str]:
    """Curated ``events`` when it received rows in the warm-up, else ``raw_events``."""
    if ctx.primary == CURATED and not ladder.has_curated_rows(ctx.watch):
        ctx.primary = RAW
        return ["the curated `events` table got no rows in the warm-up: figures are for raw_events"]
    return []


def job_code(args: argparse.Namespace, out: Path) -> Path:
    """The tree the job runs from: the checkout as it is, or a commit exported from git."""
    if args.code == "worktree":
        return PROJECT_ROOT
    return deployment.export_commit(args.code, out / "code")


def run_ladder(
    settings: Settings, args: argparse.Namespace, out: Path, clock: Clock
) -> dict[str, Any]:
    """Start the job, warm it up, then climb the rates; returns the steps and notes."""
    code = job_code(args, out)
    outcome, ready_s = deployment.start_ingest_job(settings, clock.remaining() + 60, code)
    clock.say(f"{outcome}; first batch after {ready_s:.0f}s")
    curated = curated_events_path(settings) if deployment.job_writes_curated(settings) else None
    clock.say(f"the job writes {'curated `events`' if curated else 'only `raw_events`'}")
    watch = LakeWatch(settings.hdfs, settings.raw_events_path, curated, args.poll_interval)
    ends = ladder.TopicEnds(settings.kafka.bootstrap_servers, settings.kafka.events_topic)
    ctx = ladder.StepContext(
        settings, watch, ends, out / "logs", args.sources, clock.say,
        cpu=lambda: cpu.snapshot(deployment.service_pids(settings)),
        primary=CURATED if curated else RAW,
    )  # fmt: skip
    notes: list[str] = []
    steps: list[dict[str, Any]] = []
    warmup, failure = None, None
    watch.start()
    try:
        if args.warmup_seconds > 0:
            warmup = ladder.run_step(ctx, args.rate_list[0], args.warmup_seconds, 0, "warm-up")
        notes += choose_primary(ctx)
        notes += climb(ctx, args, clock, steps)
    except ladder.JobDied as exc:
        failure = str(exc)
        clock.say(f"THE INGEST JOB DIED: {failure}")
    finally:
        watch.stop()
        ends.close()
    return {
        "steps": steps,
        "warmup": warmup,
        "job_failure": failure,
        "primary_table": ctx.primary,
        "job_ready_s": round(ready_s, 1),
        "poll_resolution": watch.poller.resolution(),
        "poll_errors": watch.poller.errors[:20],
        "ladder_note": "; ".join(notes) or None,
    }


# Results ----------------------------------------------------------------------------------


def caveats(results: dict[str, Any], args: argparse.Namespace) -> list[str]:
    s = results["settings"]
    ceiling = s["max_offsets_per_trigger"] / s["trigger_seconds"]
    items = [
        *args.note,
        "Other processes on the machine were not controlled: the load averages above include "
        "them. The references ran before the job started, each alone; during the steps the "
        "producer, the broker, HDFS, the job and the benchmark's poller share the CPUs.",
        f"A batch takes at most maxOffsetsPerTrigger events and a batch that ends early waits "
        f"for the next trigger: the job cannot ingest more than "
        f"{s['max_offsets_per_trigger']:,} / {s['trigger_seconds']} s = {ceiling:,.0f} "
        "events/s, however fast it is.",
        f"Steps of {args.step_seconds:.0f} s with a {s['trigger_seconds']} s trigger hold a "
        "handful of batches each: one slow batch (garbage collection, a neighbour's burst) moves "
        "a step's p99 and can fail it. Repeat runs before trusting a difference of 20 %.",
        "The offered load comes from Lakepulse's producer, one Python process: rates above its "
        "unpaced rate (see the references) cannot be offered, and near it the producer itself "
        "takes a core from the pipeline.",
        "The poller reads every new file of both tables over WebHDFS (a few MB per batch) while "
        "the job runs; its cost is small but not zero.",
        "The unparsed Spark read runs first in a fresh JVM, the parsed one second: the parsed "
        "figure profits from the warm-up, so the parsing's cost is, if anything, understated.",
    ]
    return items


def reference_rates(refs: dict[str, Any]) -> dict[str, float | None]:
    return {
        key: refs.get(key, {}).get("rate")
        for key in ("kafka_producer", "kafka_consumer", "spark_noop")
    }


# Sections of RESULTS.md that other benchmarks write (bench.nab): kept when the page is redone.
OTHER_SECTIONS = "\n## NAB"


def _keep_other_sections(page: str, path: Path) -> str:
    old = path.read_text() if path.exists() else ""
    return (
        page.rstrip("\n") + "\n" + old[old.index(OTHER_SECTIONS) :]
        if OTHER_SECTIONS in old
        else page
    )


def write_results(results: dict[str, Any], args: argparse.Namespace, out: Path) -> None:
    results["caveats"] = caveats(results, args)
    report.write_json(results, out / "results.json")
    args.results.write_text(_keep_other_sections(report.render_markdown(results), args.results))


def configure(args: argparse.Namespace, out: Path) -> Settings:
    config = out / "lakepulse.toml"
    deployment.write_config(
        config,
        {
            "trigger_seconds": args.trigger_seconds,
            "max_offsets_per_trigger": args.max_offsets_per_trigger,
        },
    )
    settings = deployment.activate(out / "data", config)
    logging.getLogger("lakepulse").setLevel(logging.WARNING)  # this process: progress only
    return settings


def initial_results(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """What is known before measuring: the command, the machine, versions and settings."""
    return {
        "command": command_line(),
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": report.machine(),
        "versions": report.versions(settings),
        "settings": report.pipeline_settings(settings),
        "config": {
            "rates": args.rate_list,
            "step_seconds": args.step_seconds,
            "warmup_seconds": args.warmup_seconds,
            "perf_records": args.perf_records,
            "sources": args.sources,
            "poll_interval": args.poll_interval,
            "budget_minutes": args.budget_minutes,
            "code": args.code,
        },
        "drain_limit_s": ladder.drain_limit(settings),
        "references": {},
        "steps": [],
        "primary_table": RAW,
        "event_bytes": 0.0,
        "poll_resolution": {"median_s": None, "p99_s": None, "max_s": None},
    }


def render_only(source: Path, destination: Path) -> int:
    """Write RESULTS.md again from a results.json (after a change of the page's layout)."""
    results = json.loads(source.read_text())
    destination.write_text(_keep_other_sections(report.render_markdown(results), destination))
    print(f"wrote {destination} from {source} (run of {results['started_at']} UTC)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        return render_only(args.render, args.results)
    clock = Clock(args.budget_minutes * 60)
    out = args.out.resolve()
    settings = configure(args, out)
    results = initial_results(args, settings)
    clock.say(
        f"private deployment in {settings.paths.data_dir}, Kafka at "
        f"{settings.kafka.bootstrap_servers}; budget {args.budget_minutes:.0f} min"
    )
    (out / "logs").mkdir(parents=True, exist_ok=True)
    code = 0
    try:
        deployment.wipe(settings, clock.say)
        deployment.start_services(settings, clock.say)
        refs, results["event_bytes"] = references(settings, args, out, clock)
        results["references"] = refs
        results["reference_rates"] = reference_rates(refs)
        results.update(run_ladder(settings, args, out, clock))
    except BaseException as exc:  # Ctrl-C included: results so far are still written
        results["error"] = f"{type(exc).__name__}: {exc}"
        clock.say(f"FAILED: {results['error']}")
        traceback.print_exc()
        code = 1
    finally:
        clock.say("stopping the job, Kafka and HDFS")
        deployment.stop_services(settings, clock.say)
        if not args.keep_data:
            deployment.drop_data(settings)
    results.setdefault("reference_rates", reference_rates(results["references"]))
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["elapsed_minutes"] = round(clock.elapsed() / 60, 2)
    write_results(results, args, out)
    clock.say(f"wrote {args.results} and {out / 'results.json'}")
    best = analysis.highest_sustained(results["steps"])
    if best is not None:
        clock.say(
            f"highest sustained: {best['offered_rate']:,.0f}/s offered; {ladder.summary(best)}"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
