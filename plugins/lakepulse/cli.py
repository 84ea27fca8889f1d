"""`lakepulse`: the platform's command line.

lakepulse up | down | status          the local platform (what `make run/stop/status` call)
lakepulse produce [--sources ...]     replay NAB series (or synthetic streams) into Kafka
lakepulse consume [--topic ...]       read a topic back and count what is there
lakepulse sql "<query>"               Spark SQL over the lake's tables
lakepulse sql --query NAME            a named analysis (--list-queries), e.g. --param day=...
lakepulse airflow-env                 export lines to run Airflow's own CLI on this deployment
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from lakepulse.settings import SettingsError, get_settings


def _up(args: argparse.Namespace) -> int:
    from lakepulse.services import stack

    stack.up(
        get_settings(),
        start_producer=not args.no_producer,
        wait_for_data=not args.no_wait,
        data_timeout=args.timeout,
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    from lakepulse.services import stack

    stack.down(get_settings())
    return 0


def _status(args: argparse.Namespace) -> int:
    from lakepulse.services import stack

    settings = get_settings()
    results = stack.checks(settings)
    width = max(len(check.name) for check in results)
    for check in results:
        mark = "ok  " if check.health.ok else "DOWN"
        print(f"{mark} {check.name:<{width}}  {check.health.detail}")
    if args.memory:
        memory = stack.memory_report(settings)
        for name, rss in memory.items():
            print(f"     {name:<{width}}  {rss / 2**20:8.0f} MiB resident")
        print(f"     {'total':<{width}}  {sum(memory.values()) / 2**20:8.0f} MiB resident")
    return 0 if all(check.health.ok for check in results) else 1


def _produce(args: argparse.Namespace) -> int:
    from lakepulse.producer import produce
    from lakepulse.sources.faults import FaultConfig

    settings = get_settings()
    configured = settings.producer
    try:
        faults = FaultConfig(
            malformed=configured.malformed_share if args.malformed is None else args.malformed,
            duplicates=configured.duplicate_share if args.duplicates is None else args.duplicates,
            late=configured.late_share if args.late is None else args.late,
            out_of_order=(
                configured.out_of_order_share if args.out_of_order is None else args.out_of_order
            ),
            lateness_s=configured.lateness_seconds if args.lateness is None else args.lateness,
        )
    except ValueError as exc:
        print(f"lakepulse produce: {exc}", file=sys.stderr)
        return 2
    report = produce(
        settings,
        sources=args.sources,
        speedup=args.speedup,
        rate=args.rate,
        limit=args.limit,
        synthetic=args.synthetic,
        sources_count=args.sources_count,
        faults=faults,
        seed=args.seed,
        # None: the configured default (rebased); a resumed replay keeps its own clock.
        rebase=False if args.original_times else None,
        progress=not args.no_progress,
        topic=args.topic,
        resume=Path(args.resume) if args.resume else None,
    )
    print(json.dumps(report.as_dict(), indent=2))
    return 0 if report.ok else 1


def _consume(args: argparse.Namespace) -> int:
    from lakepulse.consumer import consume

    settings = get_settings()
    report = consume(settings, args.topic or settings.kafka.events_topic, timeout_s=args.timeout)
    print(json.dumps(report.as_dict(), indent=2))
    return 0


def _sql(args: argparse.Namespace) -> int:
    if args.list_queries:
        from lakepulse.analysis import list_queries_command

        return list_queries_command()
    if args.named:
        from lakepulse.analysis import named_query_command

        return named_query_command(get_settings(), args.named, args.param)
    if not args.query:
        print("lakepulse sql: give a query, or --query NAME (--list-queries)", file=sys.stderr)
        return 2
    from lakepulse.lake import sql_command

    return sql_command(get_settings(), args.query)


def _quality_profile(args: argparse.Namespace) -> int:
    from lakepulse.quality.profile import write_profile
    from lakepulse.quality.profiling import profile_history

    settings = get_settings()
    out = args.out or settings.quality.profile_path
    profile = profile_history(settings, from_nab=args.from_nab, margin=args.margin)
    write_profile(profile, out)
    print(f"proposed ranges for {len(profile['sources'])} sources in {out}: review the diff, "
          "then check it in")  # fmt: skip
    return 0


def _quality_write_context(args: argparse.Namespace) -> int:
    from lakepulse.quality.suites import write_context

    print("wrote suites:", ", ".join(write_context()))
    return 0


def _airflow_env(args: argparse.Namespace) -> int:
    from lakepulse.services.airflow import airflow_env

    for key, value in sorted(airflow_env(get_settings()).items()):
        print(f"export {key}={shlex.quote(value)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakepulse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the local platform and its main job")
    up.add_argument("--no-producer", action="store_true", help="do not start the replay producer")
    up.add_argument("--no-wait", action="store_true", help="return before events land in HDFS")
    up.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for data")
    up.set_defaults(handler=_up)

    commands.add_parser("down", help="stop everything `up` started").set_defaults(handler=_down)

    status = commands.add_parser("status", help="health of every service; non-zero if one is down")
    status.add_argument("--memory", action="store_true", help="also print resident memory")
    status.set_defaults(handler=_status)

    produce = commands.add_parser("produce", help="replay events into Kafka")
    produce.add_argument("--sources", help="NAB series or categories, comma-separated")
    produce.add_argument("--speedup", type=float, help="replay speed-up (0: as fast as possible)")
    produce.add_argument(
        "--rate",
        type=float,
        help="events per second of wall time, all sources together (replaces --speedup; "
        "synthetic event time then keeps pace with wall time)",
    )
    produce.add_argument("--limit", type=int, help="stop after this many messages")
    produce.add_argument("--synthetic", action="store_true", help="use the built-in generator")
    produce.add_argument("--sources-count", type=int, metavar="N", help="synthetic sources")
    produce.add_argument("--seed", type=int, default=0, help="seed of synthetic values and faults")
    produce.add_argument(
        "--original-times",
        action="store_true",
        help="NAB: send the original timestamps instead of rebasing every series onto the "
        "replay's clock (a resumed replay keeps the clock it started with)",
    )
    faults = produce.add_argument_group(
        "faults", "shares of the messages sent that are faults, to test the pipeline"
    )
    faults.add_argument(
        "--malformed", type=float, metavar="SHARE",
        help="not JSON, a missing field, a bad timestamp or a wrong type",
    )  # fmt: skip
    faults.add_argument(
        "--duplicates", type=float, metavar="SHARE",
        help="an event sent again a little later, byte for byte",
    )  # fmt: skip
    faults.add_argument(
        "--late", type=float, metavar="SHARE",
        help="events more than --lateness behind the event-time front",
    )  # fmt: skip
    faults.add_argument(
        "--out-of-order", type=float, metavar="SHARE",
        help="events sent after a later one of their source, within --lateness",
    )  # fmt: skip
    faults.add_argument(
        "--lateness", type=float, metavar="SECONDS",
        help="the lateness bound (default: producer.lateness_seconds, 600)",
    )  # fmt: skip
    produce.add_argument("--topic", help="topic (default: the events topic)")
    produce.add_argument("--no-progress", action="store_true", help="no progress bar")
    produce.add_argument("--resume", metavar="FILE",
                         help="position file: skip what an earlier run delivered")  # fmt: skip
    produce.set_defaults(handler=_produce)

    consume = commands.add_parser("consume", help="read a topic back and report counts")
    consume.add_argument("--topic", help="topic (default: the events topic)")
    consume.add_argument("--timeout", type=float, default=60.0, help="seconds at most")
    consume.set_defaults(handler=_consume)

    sql = commands.add_parser("sql", help="run Spark SQL over the lake's tables")
    sql.add_argument("query", nargs="?", help="a SQL statement")
    sql.add_argument(
        "--query",
        dest="named",
        metavar="NAME",
        help="run a named analysis (plugins/lakepulse/analysis/queries/NAME.sql)",
    )
    sql.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the named query, e.g. day=2026-11-25 (repeatable)",
    )
    sql.add_argument("--list-queries", action="store_true", help="list the named analyses")
    sql.set_defaults(handler=_sql)

    quality = commands.add_parser("quality", help="data-quality suites and source profiles")
    steps = quality.add_subparsers(dest="step", required=True)
    profile = steps.add_parser(
        "profile", help="propose per-source value ranges from history (for review)"
    )
    profile.add_argument("--out", type=Path, help="where (default: [quality] profile_path)")
    profile.add_argument(
        "--from-nab", action="store_true",
        help="learn from the NAB series files instead of the lake (before any data landed)",
    )  # fmt: skip
    profile.add_argument("--margin", type=float, default=0.25, help="widening of min/max")
    profile.set_defaults(handler=_quality_profile)
    steps.add_parser(
        "write-context", help="rewrite expectations/gx from lakepulse.quality.suites"
    ).set_defaults(handler=_quality_write_context)

    env = commands.add_parser("airflow-env", help="print the Airflow environment as exports")
    env.set_defaults(handler=_airflow_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SettingsError as exc:
        print(f"lakepulse: settings error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
