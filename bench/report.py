"""The machine, the versions, and the results as bench/RESULTS.md and bench/out/results.json."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import analysis, cpu
from bench.deployment import JOB_NAME
from lakepulse.settings import PROJECT_ROOT, Settings


def _first_match(path: str, pattern: str) -> str | None:
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1).strip() if match else None


JOB_CPU = JOB_NAME  # the job's entry in a step's cpu_cores


def machine() -> dict[str, Any]:
    mem_kb = _first_match("/proc/meminfo", r"^MemTotal:\s+(\d+)")
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _first_match("/proc/cpuinfo", r"^model name\s*:\s*(.+)$")
        or platform.processor(),
        "memory_gib": round(int(mem_kb) / 2**20, 1) if mem_kb else None,
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _jar_version(folder: Path, prefix: str) -> str | None:
    for jar in sorted(folder.glob(f"{prefix}*.jar")):
        match = re.match(rf"{re.escape(prefix)}(\d[\w.\-]*)\.jar$", jar.name)
        if match:
            return match.group(1)
    return None


def _command_output(command: Sequence[str]) -> str:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=30, cwd=PROJECT_ROOT
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (result.stdout + result.stderr).strip()


def _first(version: str | tuple[str, int]) -> str:
    """confluent-kafka's version(): a string in some releases, (string, int) in others."""
    return version if isinstance(version, str) else version[0]


def versions(settings: Settings) -> dict[str, Any]:
    import confluent_kafka
    import pyarrow
    import pyspark

    jars = settings.paths.jars_dir
    dirty = _command_output(["git", "status", "--porcelain"])
    return {
        "python": platform.python_version(),
        "java": _command_output(["java", "-version"]).splitlines()[0:1],
        "pyspark": pyspark.__version__,
        "kafka_broker_and_tools": _jar_version(jars / "kafka", "kafka-clients-"),
        "spark_sql_kafka": _jar_version(jars / "spark-kafka", "spark-sql-kafka-0-10_2.13-"),
        "spark_kafka_clients": _jar_version(jars / "spark-kafka", "kafka-clients-"),
        "hadoop": _jar_version(jars / "hadoop", "hadoop-hdfs-"),
        "confluent_kafka": _first(confluent_kafka.version()),
        "librdkafka": _first(confluent_kafka.libversion()),
        "pyarrow": pyarrow.__version__,
        "git_commit": _command_output(["git", "rev-parse", "--short", "HEAD"]),
        "git_uncommitted_files": len(dirty.splitlines()) if dirty else 0,
    }


def pipeline_settings(settings: Settings) -> dict[str, Any]:
    spark = settings.spark
    return {
        "master": spark.master,
        "driver_memory": spark.driver_memory,
        "trigger_seconds": spark.trigger_seconds,
        "max_offsets_per_trigger": spark.max_offsets_per_trigger,
        "shuffle_partitions": spark.shuffle_partitions,
        "watermark_delay": spark.watermark_delay,
        "events_partitions": settings.kafka.events_partitions,
        "kafka_heap": settings.kafka.heap,
        "hdfs_heap": settings.hdfs.heap,
    }


def write_json(results: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


# Markdown ---------------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _references_table(refs: Mapping[str, Any]) -> list[str]:
    lines = ["| reference (same run) | events/s | detail |", "| --- | ---: | --- |"]
    for ref in refs.values():
        lines.append(f"| {ref['name']} | {_rate(ref.get('rate'))} | {ref.get('detail', '')} |")
    return lines


def _step_row(step: Mapping[str, Any], rates: Mapping[str, float | None], raw: bool) -> str:
    latency = step["latency"]
    throughput = step["throughput"]
    cores = step.get("cpu_cores", {})
    cells = [
        _rate(step["offered_rate"]),
        _rate(step["producer_rate"]),
        _rate(throughput) + ("" if step["verdict"] == analysis.SUSTAINED else " (capacity)"),
        _seconds(latency["p50_s"]),
        _seconds(latency["p99_s"]),
        _seconds(latency["max_s"]),
    ]
    if raw:
        raw_latency = step["tables"]["raw_events"]["latency"]
        cells.append(f"{_seconds(raw_latency['p50_s'])} / {_seconds(raw_latency['p99_s'])}")
    cells += [
        f"{step['verdict']}: {step['why']}",
        _percent(analysis.ratio(throughput, rates["kafka_producer"])),
        _percent(analysis.ratio(throughput, rates["kafka_consumer"])),
        _percent(analysis.ratio(throughput, rates["spark_noop"])),
        f"{cores.get(JOB_CPU, '-')} / {cores.get(cpu.OTHERS, '-')}",
    ]
    return "| " + " | ".join(cells) + " |"


def _steps_table(
    steps: Sequence[Mapping[str, Any]], rates: Mapping[str, float | None], primary: str
) -> list[str]:
    """One row per step; the raw_events latency too when the figures are for `events`."""
    raw = primary != "raw_events"
    header = ["offered ev/s", "produced ev/s", "carried ev/s", "p50 s", "p99 s", "max s"]
    header += ["raw_events p50 / p99 s"] if raw else []
    header += ["verdict", "vs Kafka producer", "vs Kafka consumer", "vs Spark no-op",
               "CPU cores: job / others"]  # fmt: skip
    align = ["---:"] * (len(header) - 5) + ["---", "---:", "---:", "---:", "---:"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    return lines + [_step_row(step, rates, raw) for step in steps]


def _headline(results: Mapping[str, Any]) -> list[str]:
    best = analysis.highest_sustained(results["steps"])
    rates = results["reference_rates"]
    if best is None:
        return ["**No offered rate was sustained in this run** (see the verdicts below)."]
    carried = best["throughput"]
    return [
        f"**Highest sustained rate: {carried:,.0f} events/s produced -> visible in "
        f"`{best['primary_table']}` (step offering {best['offered_rate']:,.0f}/s), latency "
        f"p50 {_seconds(best['latency']['p50_s'])} s, p99 {_seconds(best['latency']['p99_s'])} "
        f"s**: {_percent(analysis.ratio(carried, rates['kafka_producer']))} of Kafka's "
        f"producer, {_percent(analysis.ratio(carried, rates['kafka_consumer']))} of Kafka's "
        f"consumer, {_percent(analysis.ratio(carried, rates['spark_noop']))} of Spark's no-op "
        "read with the same parsing, all measured in this run."
    ]


def _code(code: str) -> str:
    if code == "worktree":
        return "the job ran from the working tree as it was"
    return f"the job ran commit `{code}` (exported with git archive), not the working tree"


def _failure(results: Mapping[str, Any]) -> list[str]:
    lines = []
    if failure := results.get("job_failure"):
        lines += [f"**The ingest job died during the run**: {failure}", ""]
    if error := results.get("error"):
        lines += [f"**The run did not complete**: {error}", ""]
    return lines


def render_markdown(results: Mapping[str, Any]) -> str:
    m, v, s = results["machine"], results["versions"], results["settings"]
    config = results["config"]
    out = [
        "# Benchmark: the streaming pipeline end to end",
        "",
        f"Run {results['started_at']} (UTC), {results['elapsed_minutes']:.1f} minutes, "
        "produced by:",
        "",
        "```bash",
        results["command"],
        "```",
        "",
        f"**Machine**: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, "
        f"Linux {m['kernel']}; load average {m['load_average_at_start'][0]} when the run began, "
        f"{results['load_average_at_end'][0]} at its end (1-minute averages, all processes).",
        "",
        f"**Versions**: Kafka {v['kafka_broker_and_tools']} (broker and perf tools), Spark "
        f"{v['pyspark']} with spark-sql-kafka {v['spark_sql_kafka']} (kafka-clients "
        f"{v['spark_kafka_clients']}), Hadoop {v['hadoop']}, Python {v['python']}, "
        f"confluent-kafka {v['confluent_kafka']} (librdkafka {v['librdkafka']}), "
        f"{' '.join(v['java'])}; git {v['git_commit']} with {v['git_uncommitted_files']} "
        f"uncommitted files; {_code(config['code'])}.",
        "",
        f"**Pipeline settings**: Spark `{s['master']}`, driver memory {s['driver_memory']}, "
        f"trigger {s['trigger_seconds']} s, maxOffsetsPerTrigger {s['max_offsets_per_trigger']:,}, "
        f"{s['shuffle_partitions']} shuffle partitions, watermark {s['watermark_delay']}; "
        f"events topic {s['events_partitions']} partitions; Kafka heap {s['kafka_heap']}, HDFS "
        f"heap {s['hdfs_heap']}. Events: {config['sources']} synthetic sources, "
        f"{results['event_bytes']:.0f} bytes on average.",
        "",
        *_headline(results),
        "",
        *_failure(results),
        "## References",
        "",
        *_references_table(results["references"]),
        "",
        f"## Pipeline: produced -> visible in `{results['primary_table']}`",
        "",
        f"Each step offers one rate for {config['step_seconds']:.0f} s (after an unreported "
        f"{config['warmup_seconds']:.0f} s warm-up); the ladder stops at the first step that is "
        "not sustained. Ratios are the carried rate over each reference's rate.",
        "",
        *_steps_table(results["steps"], results["reference_rates"], results["primary_table"]),
        "",
        *([f"{note[0].upper()}{note[1:]}.", ""] if (note := results.get("ladder_note")) else []),
        "## How it is measured",
        "",
        *_method(results),
        "",
        "## Caveats",
        "",
        *[f"- {caveat}" for caveat in results["caveats"]],
        "",
    ]
    return "\n".join(out)


def _method(results: Mapping[str, Any]) -> list[str]:
    resolution = results["poll_resolution"]
    return [
        "- *Produced at* is each event's Kafka timestamp (CreateTime, set by the producer "
        "client when it hands the event over; `kafka_timestamp` in `raw_events`). *Visible at* "
        "is when the benchmark's poller first listed the file holding the row: for `raw_events` "
        "a file counts once its batch is committed in the sink's `_spark_metadata` log, for "
        "`events` once it is renamed into its partition. Both clocks are this host's.",
        f"- Resolution: the poller lists each table every {results['config']['poll_interval']} s; "
        f"the time between two listings was {resolution['median_s']} s (median), "
        f"{resolution['p99_s']} s (p99), {resolution['max_s']} s (max): a latency is "
        "overstated by at most that much.",
        "- Rows are matched to a step by Kafka partition and offset (the topic's end offsets "
        "before and after the step). Latencies are over every event of the step.",
        "- *Carried ev/s*: for a sustained step, the rate the producer delivered (every event "
        "became visible, the lag stayed bounded). For a step that fell behind, the rate rows "
        "became visible batch to batch (the interior batches' rows over the time between "
        "their sightings, the drain included): the pipeline's capacity under overload. "
        "`results.json` has the batch-to-batch rate of every step.",
        "- Latencies of a step that fell behind are over the events that became visible "
        "within the drain limit only: they understate it.",
        "- A step is *sustained* when the producer delivered at least 90 % of the offered rate, "
        "every event became visible within the drain limit "
        f"({results['drain_limit_s']:.0f} s) after the producer stopped, and the lag right "
        "after each batch (its low point) grew by less than one trigger's worth of events.",
        "- Kafka ProducerPerformance sends real events (a payload file of synthetic events) with "
        "Lakepulse's producer settings (acks=all, idempotence, linger 20 ms, batch 1 MB, lz4) "
        "unthrottled; ConsumerPerformance and Spark's no-op read the topic it filled. The "
        "no-op read is the job's own Kafka source and `parse_kafka_records` into `noop`, "
        "availableNow, timed from the query's start to its end (session start excluded).",
        "- *CPU cores: job / others*: CPU time over the step divided by its duration, for the "
        "job's process group and for every process on the machine that is not this "
        "benchmark's (the neighbours); `results.json` has Kafka, HDFS, the producer and the "
        "poller too.",
        "- Airflow and MLflow are not started: the job is started with the `spark-submit` "
        "command line SparkSubmitOperator builds for `streaming_supervisor` (same conf, jars "
        "and script), which leaves the two cores to the pipeline instead of Airflow's four "
        "processes and keeps its watchdog from restarting a job that falls behind on purpose.",
    ]
