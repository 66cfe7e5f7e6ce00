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

.PHONY: install test lint alerts demo bench bench-egress bench-normalize clean sanitize fuzz

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# setup.py and the C sources too: the editable install compiles the hot path's extension.
$(VENV)/.synced: pyproject.toml uv.lock setup.py $(wildcard src/ingress_egress/_native/*.c) | $(UV)
	$(UV) sync --frozen --extra dev --python $(PYTHON)
	touch $@

install: $(VENV)/.synced

# lint-imports: the import layers ([tool.importlinter] in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(VENV)/bin/hadolint Dockerfile

# promtool from Debian's prometheus package (.ci/install-promtool; nothing by hand).
$(PROMTOOL):
	.ci/install-promtool $@

# The alert rules are code: checked, and unit-tested against series that must / must not fire.
alerts: $(PROMTOOL)
	$(PROMTOOL) check rules $(ALERTS)
	cd $(dir $(ALERTS)) && $(abspath $(PROMTOOL)) test rules alerts.test.yaml

# After the normal tests: the C under ASan/UBSan, then a bounded differential fuzz run.
test: lint alerts
	$(VENV)/bin/python -m pytest
	$(MAKE) sanitize
	$(MAKE) fuzz FUZZ_SECONDS=60

# The extension built with ASan + UBSan into build/sanitize (never the editable build), put
# first on the path (a copy of the package around it), and the differential tests plus a
# bounded fuzz run on it. PYTHONMALLOC=malloc: so ASan sees every object (pymalloc's arenas
# would hide an overflow); detect_leaks=0: CPython keeps memory at exit on purpose.
# libstdc++ preloaded after libasan: atheris' libFuzzer throws C++ exceptions, and ASan's
# __cxa_throw interceptor must find the real one at start-up (else 'CHECK failed').
# Under ASan the Python reference runs tens of times slower, so the per-input time budget is
# generous there; the check for quadratic work is make fuzz's (1 s per input, natively). The
# fuzz run there mutates the seeds at random (FUZZ_ENGINE=mutate): atheris' coverage does not
# reach libFuzzer in the ASan build, which would leave it fuzzing a 1-byte input.
FUZZ_SECONDS ?= 60
SANITIZE_FUZZ_SECONDS ?= 30
SANITIZE_DIR := build/sanitize
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1 -g
SANITIZE_TESTS := tests/test_codec_native.py tests/test_fast_hpub.py tests/test_pipeline_lines.py \
	tests/test_split_lines.py tests/test_fuzz_corpus.py
SANITIZE_ENV = PYTHONPATH=$(abspath $(SANITIZE_DIR)/lib) PYTHONMALLOC=malloc \
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" \
	ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

sanitize: install
	rm -rf $(SANITIZE_DIR)/lib && mkdir -p $(SANITIZE_DIR)/lib
	(cd src && tar cf - --exclude='*.so' --exclude=__pycache__ ingress_egress) | (cd $(SANITIZE_DIR)/lib && tar xf -)
	CC=gcc CFLAGS="$(SANITIZE_FLAGS)" LDFLAGS="-fsanitize=address,undefined" \
		$(VENV)/bin/python setup.py -q build_ext --force \
		--build-lib $(SANITIZE_DIR)/lib --build-temp $(SANITIZE_DIR)/tmp
	$(SANITIZE_ENV) $(VENV)/bin/python -c "import sys, ingress_egress._native as n; \
		f = n.speedups.__file__; print('sanitized module:', f); \
		sys.exit(0 if '$(SANITIZE_DIR)/lib' in f and 'libasan' in open('/proc/self/maps').read() else 1)"
	$(SANITIZE_ENV) FUZZ_BUDGET_SECONDS=30 $(VENV)/bin/python -m pytest -q -p no:cacheprovider --capture=sys $(SANITIZE_TESTS)
	$(SANITIZE_ENV) FUZZ_BUDGET_SECONDS=30 FUZZ_ENGINE=mutate $(VENV)/bin/python -m tests.fuzz.run $(SANITIZE_FUZZ_SECONDS) $(SANITIZE_DIR)/fuzz

# The differential fuzz target (tests/fuzz/): Python reference vs C, FUZZ_SECONDS long.
fuzz: install
	$(VENV)/bin/python -m tests.fuzz.run $(FUZZ_SECONDS) build/fuzz

demo: install
	$(VENV)/bin/ingress-egress demo

bench: install
	$(VENV)/bin/python bench/run.py

# Sending: ingress-egress serve, tmi.js and twurple against one simulator (~2 minutes).
bench-egress: install
	$(VENV)/bin/python bench/bench_egress.py

bench-normalize: install
	$(VENV)/bin/python bench/bench_normalize.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache
