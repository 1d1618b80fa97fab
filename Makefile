# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# pnpm for the pnpm end-to-end tests: pinned, from the npm registry, kept inside the checkout.
PNPM_VERSION := 10.34.9
PNPM_STAMP   := .tools/.pnpm-$(PNPM_VERSION)

.PHONY: demo test bench clean

$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(PNPM_STAMP):
	npm install --prefix .tools --no-audit --no-fund --loglevel=error pnpm@$(PNPM_VERSION)
	touch $@

demo: $(STAMP)
	$(VENV)/bin/credhelper demo

# pytest exits 5 when it collected no test; make treats that as the failure it is.
test: $(STAMP) $(PNPM_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .tools build *.egg-info
