# Two commands do everything on a fresh machine:  make serve   and   make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

# Serving installs only what serving needs; the tests add their extras (browser driver, client generator, mypy...).
$(BIN)/loyalty: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-extras: $(BIN)/loyalty
	$(BIN)/pip install -q -e '.[test]'
	touch $@

.PHONY: install install-test serve test bench clean
install: $(BIN)/loyalty
install-test: $(VENV)/.test-extras

serve: install  ## install, migrate the SQLite default, load the demo club, serve on http://127.0.0.1:5000
	$(BIN)/loyalty db upgrade
	$(BIN)/loyalty demo
	@echo "Console: http://$(HOST):$(PORT)/console/   API docs: http://$(HOST):$(PORT)/api/v1/docs   OpenAPI: http://$(HOST):$(PORT)/api/v1/openapi.json"
	$(BIN)/gunicorn --bind $(HOST):$(PORT) --workers 2 --preload "api:create_app()"  # gunicorn.conf.py: threaded workers, timeouts

test: install-test  ## install with the test extras and run the suite (PostgreSQL tests run when DATABASE_URL points there)
	$(BIN)/pytest -q

bench: install-test  ## the purchase benchmark (needs PostgreSQL and wrk)
	$(BIN)/python -m tests.bench.purchases

clean:
	rm -rf $(VENV) instance *.egg-info
