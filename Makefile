# Everything bootstraps from the repo's own files: uv (pinned) installs the locked
# dependencies (uv.lock) into .venv. Nothing needs to be installed by hand.
PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
TOOLS := .tools
UV := $(TOOLS)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never

PROMTOOL := $(TOOLS)/bin/promtool
ALERTS := docs/ops/alerts.yaml

.PHONY: install test lint alerts demo bench bench-normalize clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# setup.py and the C sources too: the editable install compiles the hot path's extension.
$(VENV)/.synced: pyproject.toml uv.lock setup.py $(wildcard src/ingress_egress/_native/*.c) | $(UV)
	$(UV) sync --frozen --extra dev --python $(PYTHON)
	touch $@

install: $(VENV)/.synced

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/hadolint Dockerfile

# promtool from Debian's prometheus package (.ci/install-promtool; nothing by hand).
$(PROMTOOL):
	.ci/install-promtool $@

# The alert rules are code: checked, and unit-tested against series that must / must not fire.
alerts: $(PROMTOOL)
	$(PROMTOOL) check rules $(ALERTS)
	cd $(dir $(ALERTS)) && $(abspath $(PROMTOOL)) test rules alerts.test.yaml

test: lint alerts
	$(VENV)/bin/python -m pytest

demo: install
	$(VENV)/bin/ingress-egress demo

bench: install
	$(VENV)/bin/python bench/run.py

bench-normalize: install
	$(VENV)/bin/python bench/bench_normalize.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache
