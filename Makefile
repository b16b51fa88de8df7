# Two entry points for a fresh machine with Python 3.11+ (see README):
#   make demo   set up .venv from the lock file and run the main job on the embedded defaults
#   make test   set up .venv from the lock file and run the test suite
#   make test-fast   the development run: every test not marked slow (a few minutes; see pyproject.toml)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-fast spark lock clean

# The package's own bytecode is compiled too (uv compiles the dependencies'; an editable install's
# sources are not, and with PYTHONDONTWRITEBYTECODE set every command would compile them again).
setup: $(VENV)/.installed
	@$(BIN)/python -m compileall -q ipvalue > /dev/null

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements.lock -e .
	touch $@

demo: setup
	$(BIN)/ipvalue demo

test: setup
	$(BIN)/python -m pytest

# Leaves out the tests marked slow (wheel and venv builds, Spark, Chromium, PDF, PostgreSQL, whole
# experiments, concurrency stress); `make test` and .ci/run still run everything.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

# The optional Spark engine (pyspark, needs Java): the same pins plus pyspark.
spark: setup
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements-spark.lock

# Re-resolve the pinned versions after changing dependencies in pyproject.toml.
lock:
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 --universal -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test --extra spark --python-version 3.11 --universal -o requirements-spark.lock

clean:
	rm -rf $(VENV) demo-output .pytest_cache
