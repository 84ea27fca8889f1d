"""Java command lines for the JVM services, run from the jars that infra/pom.xml copies.

Each service gets exactly one jar folder (``infra/target/<name>/*``) on its classpath, so Kafka's,
Hadoop's and Spark's dependency versions never meet in one JVM.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from lakepulse.settings import Settings

FETCH_COMMAND = "mvn -q -f infra/pom.xml package"


class JarsMissingError(FileNotFoundError):
    """The jar folder of a service is empty: the Maven fetch has not run."""


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise FileNotFoundError("no `java` on PATH and no JAVA_HOME: install a JDK 17")
    return found


def jars_dir(settings: Settings, name: str) -> Path:
    """The jar folder ``name`` (kafka, hadoop, spark-kafka)."""
    return settings.paths.jars_dir / name


def require_jars(settings: Settings, name: str) -> Path:
    """The jar folder ``name``; raises, saying how to fetch them, when it holds no jar.

    Called when a service is about to start, not when its spec is built: ``status`` and ``stop``
    must work on a machine that has not fetched the jars.
    """
    folder = jars_dir(settings, name)
    if not any(folder.glob("*.jar")):
        raise JarsMissingError(
            f"no jars in {folder}: fetch them from Maven Central with `{FETCH_COMMAND}` "
            "(run from the project root)"
        )
    return folder


def java_command(
    settings: Settings,
    jars: str,
    main_class: str,
    args: Sequence[str] = (),
    *,
    heap: str | None = None,
    jvm_options: Sequence[str] = (),
    classpath_before: Sequence[Path] = (),
) -> list[str]:
    """``java [options] -cp <extra>:<jars>/* main_class args``.

    The ``/*`` wildcard is expanded by the JVM itself, not by a shell, so the command needs none.
    """
    classpath = [*(str(p) for p in classpath_before), str(jars_dir(settings, jars) / "*")]
    options = [
        *([f"-Xmx{heap}"] if heap else []),
        "-Djava.awt.headless=true",
        # A supervised service that ran out of heap is better dead (and restarted) than limping.
        "-XX:+ExitOnOutOfMemoryError",
        *jvm_options,
    ]
    return [java_binary(), *options, "-cp", os.pathsep.join(classpath), main_class, *args]
