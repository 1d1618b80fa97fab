# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# Most tests wait on real git, pip, npm and daemon processes, so two workers per core keep a small
# machine busy; each worker runs its own emulator and leak check. TEST_WORKERS=0 runs in-process.
TEST_WORKERS ?= 4
# pnpm for the pnpm end-to-end tests: pinned, from the npm registry, kept inside the checkout.
PNPM_VERSION := 10.34.9
PNPM_STAMP   := .tools/.pnpm-$(PNPM_VERSION)
# The Python tools' end-to-end tests (tests/test_python_tools_e2e.py): uv, poetry and twine each on
# their own (pipx-style, none with credhelper in it), and pip wheels for fresh venvs: the newest
# pip, and the newest pip that still runs on Python 3.9.
UV_VERSION     := 0.13.9
POETRY_VERSION := 2.5.1
TWINE_VERSION  := 7.0.0
PIP_NEWEST     := 26.3
PIP_NEWEST_39  := 26.0.1
PYTOOLS_STAMP  := .tools/.python-tools-$(UV_VERSION)-$(POETRY_VERSION)-$(TWINE_VERSION)-$(PIP_NEWEST)-$(PIP_NEWEST_39)
# The other JavaScript clients the tests drive, the same way: npm itself (a current 11, not
# whatever the machine has), yarn classic, yarn berry (its single-file build, so corepack never
# downloads anything) and bun (its binary comes inside a registry package). Each in its own
# prefix under .tools/, so two `yarn` bins never collide.
NPM_VERSION   := 11.21.2
YARN_VERSION  := 1.22.22
BERRY_VERSION := 4.18.1
BUN_VERSION   := 1.4.5
JS_TOOLS := npm:npm@$(NPM_VERSION) yarn:yarn@$(YARN_VERSION) \
            berry:@yarnpkg/cli-dist@$(BERRY_VERSION) bun:bun@$(BUN_VERSION)
JS_STAMP := .tools/.js-$(NPM_VERSION)-$(YARN_VERSION)-$(BERRY_VERSION)-$(BUN_VERSION)
# pip 23.3 for the old-pip test (the last pip before --keyring-provider auto): its wheel, kept in
# the checkout so a test run makes a venv from it offline instead of downloading it every time.
OLD_PIP_VERSION := 23.3.2
OLD_PIP_WHEEL   := .tools/pip/pip-$(OLD_PIP_VERSION)-py3-none-any.whl

.PHONY: demo test test-fast bench stress fleet clean deps

# pip's own lines (Collecting, Installing) are the progress of the ~30 s first install.
$(STAMP): setup.cfg setup.py pyproject.toml
	@echo "== creating $(VENV) and installing credhelper with its test tools (first time: about 30 s)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off --upgrade pip
	$(PY) -m pip install --progress-bar off -e '.[test]'
	@echo "== $(VENV) ready"
	touch $@

$(PNPM_STAMP):
	@echo "== fetching pnpm $(PNPM_VERSION) from the npm registry into .tools/"
	npm install --prefix .tools --no-audit --no-fund --loglevel=error pnpm@$(PNPM_VERSION)
	touch $@

$(PYTOOLS_STAMP):
	rm -rf .tools/uv-* .tools/poetry-* .tools/twine-* .tools/wheels
	$(PYTHON) -m pip install -q --disable-pip-version-check --target .tools/uv-$(UV_VERSION) uv==$(UV_VERSION)
	$(PYTHON) -m venv .tools/poetry-$(POETRY_VERSION)
	.tools/poetry-$(POETRY_VERSION)/bin/pip install -q --disable-pip-version-check poetry==$(POETRY_VERSION)
	$(PYTHON) -m venv .tools/twine-$(TWINE_VERSION)
	.tools/twine-$(TWINE_VERSION)/bin/pip install -q --disable-pip-version-check twine==$(TWINE_VERSION)
	$(PYTHON) -m pip download -q --disable-pip-version-check --no-deps -d .tools/wheels pip==$(PIP_NEWEST)
	$(PYTHON) -m pip download -q --disable-pip-version-check --no-deps -d .tools/wheels pip==$(PIP_NEWEST_39)
	mkdir -p .tools && touch $@

# bun's binary sits in an optional dependency; a machine where it will not install keeps the
# others (the bun test then skips and says so).
$(JS_STAMP):
	@for pair in $(JS_TOOLS); do dir=.tools/$${pair%%:*}; \
	  npm install --prefix $$dir --no-audit --no-fund --loglevel=error $${pair#*:} \
	  || [ "$${pair%%:*}" = bun ] || exit 1; done
	touch $@

demo: $(STAMP)
	$(VENV)/bin/credhelper demo

# System tools (command:Debian package) the Secret Service test uses: gnome-keyring on a private
# D-Bus session, and secret-tool to look into it. Installed only when missing and only as root
# (CI, fresh containers); elsewhere, or if apt fails, that test skips and says why.
# The docker CLI (docker.io: 20.10 on Debian 12) for the registry tests; this machine kind ships
# a newer CLI already, so apt runs only where none is found. cargo >= 1.74 has no package here:
# the cargo end-to-end test uses the one on PATH and skips, saying why, without it. `script`
# (bsdutils, essential on Debian) gives the pip-at-a-terminal test its pseudo-terminal.
DEB_TOOLS := gnome-keyring-daemon:gnome-keyring dbus-daemon:dbus-daemon secret-tool:libsecret-tools \
             script:bsdutils \
             docker:docker.io
deps:
	@missing=""; for pair in $(DEB_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing$$missing"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing || \
	   (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing)) >/dev/null \
	  || echo "could not install$$missing: the tests that need them will skip"; \
	fi

# pytest exits 5 when it collected no test; make treats that as the failure it is.
$(OLD_PIP_WHEEL): $(STAMP)
	$(PY) -m pip download -q --no-deps --only-binary=:all: -d .tools/pip pip==$(OLD_PIP_VERSION)

# loadgroup keeps tests marked xdist_group(name) on one worker (those that cannot share).
test: $(STAMP) deps $(PNPM_STAMP) $(JS_STAMP) $(OLD_PIP_WHEEL) $(PYTOOLS_STAMP)
	$(PY) -m mypy
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The unit tests only: no daemon process, emulator, git, pip or npm (marker set in conftest.py).
test-fast: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -m 'not e2e' $(PYTEST_ARGS)

bench: $(STAMP) $(JS_STAMP) $(PYTOOLS_STAMP) fleet
	$(PY) benchmarks/run.py

# The long forms of tests/test_stress.py (make test runs the short ones): 100,000 fuzz inputs
# over the socket, the git helper and the keyring backend; 500 clients for 60 s. Prints the
# figures the README's Hardening section reports.
stress: $(STAMP)
	CREDHELPER_STRESS=long $(PY) -m pytest tests/test_stress.py -q -p no:cacheprovider

# A simulated workday of 10,000 workspaces on credhelper's refresh arithmetic; writes docs/fleet.png.
fleet: $(STAMP)
	$(PY) benchmarks/fleet.py --png docs/fleet.png

clean:
	rm -rf $(VENV) .tools build *.egg-info
