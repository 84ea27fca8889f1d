# Lakepulse: `make run` brings the platform up on this machine, `make test` runs every test.
# Both install what is missing first (Python virtualenv, JVM jars from Maven Central).

PYTHON      ?= python3.11
VENV        := .venv
PY          := $(VENV)/bin/python
LAKEPULSE   := $(VENV)/bin/lakepulse
PYTEST_ARGS ?=
JARS_STAMP  := infra/target/.fetched
VENV_STAMP  := $(VENV)/.installed

.PHONY: run stop status test bench bench-quality bench-nab setup venv jars system-deps lint format clean

run: setup ## start every service and the main job; returns when events have landed
	$(LAKEPULSE) up

stop: ## stop everything `make run` started
	@if [ -x $(LAKEPULSE) ]; then $(LAKEPULSE) down; else echo "nothing to stop (no $(VENV))"; fi

status: ## health of every service; exits non-zero when one is down
	@$(LAKEPULSE) status --memory

test: setup ## every test, with the services they need (started and stopped by the tests)
	$(PY) -m pytest $(PYTEST_ARGS)

BENCH_ARGS ?=
bench-quality: setup ## time the validation of a 1M-event partition; writes bench/RESULTS-quality.md
	$(PY) -m bench.quality $(BENCH_ARGS)

bench: setup ## pipeline benchmark (Kafka -> Spark -> HDFS), at most 25 min; writes bench/RESULTS.md
	$(PY) -m bench.pipeline $(BENCH_ARGS)

bench-nab: setup ## the anomaly detector on the NAB corpus, under a minute; writes bench/nab/results/
	$(PY) -m bench.nab $(BENCH_ARGS)

setup: system-deps venv jars

# Java 17 and Maven run Kafka, HDFS and Spark; Chromium is the browser the UI tests drive
# (Playwright cannot download its own here). Installed from Debian's packages when missing.
system-deps:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jdk-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -z "$$missing" ] || { \
	  echo "installing (Debian packages):$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; }

venv: $(VENV_STAMP)
$(VENV_STAMP): pyproject.toml infra/requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The lock pins every transitive package to versions tested together (pip freeze).
	$(PY) -m pip install -q -e '.[dev]' -c infra/requirements.lock
	touch $@

jars: $(JARS_STAMP)
$(JARS_STAMP): infra/pom.xml infra/kafka/pom.xml infra/hadoop/pom.xml infra/spark-kafka/pom.xml
	mvn -q -B -f infra/pom.xml package
	touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: stop ## remove all local state (HDFS blocks, Kafka logs, databases) and fetched parts
	rm -rf .lakepulse .lakepulse-test infra/target
