# pybridge: two commands do everything.
#   make setup   venvs from PyPI (real rpyc 5.x / 6.x peers, pydantic 1 and 2, with and
#                without the msgpack extension), Go modules, bin/pybridge
#   make test    go vet, go test ./..., pytest under every venv
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

VENV := .venv
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
# pyenv's versions folder first (its shims only work for the global version), then PATH
pyfind = $(or $(lastword $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python$(1))),$(shell command -v python$(1) 2>/dev/null))
PY311 := $(call pyfind,3.11)
PY39  := $(call pyfind,3.9)
PY313 := $(call pyfind,3.13)

# name | interpreter | packages
VENVS := rpyc5 rpyc6 pydantic1 py313
rpyc5_PY     := $(PY311)
rpyc5_PKGS   := rpyc==5.3.1 pytest msgpack 'pydantic>=2,<3'
rpyc6_PY     := $(PY311)
rpyc6_PKGS   := rpyc==6.0.2 pytest msgpack 'pydantic>=2,<3'
pydantic1_PY   := $(PY39)
pydantic1_PKGS := rpyc==5.3.1 pytest 'pydantic>=1.10,<2'
py313_PY     := $(PY313)
py313_PKGS   := pytest msgpack 'pydantic>=2,<3'

GO ?= go

.PHONY: setup test build venvs gotest pytest vet bench fuzz clean golden
setup: venvs build

venvs: $(addprefix $(VENV)/,$(addsuffix /.ok,$(VENVS)))

# a venv is rebuilt only when its interpreter or package list changes (recorded in .ok)
$(VENV)/%/.ok: FORCE
	@test -n "$($*_PY)" || { echo "no interpreter for venv $*"; exit 1; }
	@if [ "$$(cat $@ 2>/dev/null)" != "$($*_PY) $($*_PKGS)" ]; then \
	  set -x; rm -rf $(VENV)/$*; \
	  $($*_PY) -m venv $(VENV)/$*; \
	  $(VENV)/$*/bin/python -m pip install -q --disable-pip-version-check $($*_PKGS); \
	  echo "$($*_PY) $($*_PKGS)" > $@; \
	fi

FORCE:

build:
	$(GO) mod download
	$(GO) build -o bin/pybridge ./cmd/pybridge

# go vet, and go.mod/go.sum exactly as `go mod tidy` leaves them (a diff fails)
vet:
	$(GO) vet ./...
	$(GO) mod tidy -diff

# The embedded interpreter's Go tests also run under Python 3.9, 3.13 and Debian's
# python3 (one interpreter per test process: PYBRIDGE_TEST_PYTHON picks it).
EMBED_PYTHONS := $(PY39) $(PY313) $(wildcard /usr/bin/python3)
gotest:
	$(GO) test -race -count=1 ./...
	for p in $(EMBED_PYTHONS); do \
	  PYBRIDGE_TEST_PYTHON=$$p $(GO) test -count=1 ./pyhost/internal/cpython || exit 1; \
	  PYBRIDGE_TEST_PYTHON=$$p $(GO) test -count=1 -run Embedded ./pyhost || exit 1; \
	done

# The whole suite runs once per rpyc client version (6.0.2, 5.3.1), the serve tests under
# both isolations (spawned workers, and Python embedded in the pybridge process); the
# Python peer's own tests also run under Python 3.9 with pydantic 1 and no msgpack, under
# Python 3.13, and with the built-in msgpack codec forced.
pytest: build
	$(VENV)/rpyc6/bin/python -m pytest -q tests
	PYBRIDGE_ISOLATION=embedded $(VENV)/rpyc6/bin/python -m pytest -q tests/serve
	$(VENV)/rpyc5/bin/python -m pytest -q tests
	PYBRIDGE_ISOLATION=embedded $(VENV)/rpyc5/bin/python -m pytest -q tests/serve
	$(VENV)/pydantic1/bin/python -m pytest -q tests/peer
	$(VENV)/py313/bin/python -m pytest -q tests/peer
	PYBRIDGE_CODEC=builtin $(VENV)/rpyc6/bin/python -m pytest -q tests/peer

test: vet gotest pytest

golden:
	$(VENV)/rpyc5/bin/python scripts/gen_brine_golden.py bridge/brine/testdata/golden.json

# benchmarks: Go micro-benchmarks, then the load script (rpyc's server vs pybridge serve)
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(VENV)/rpyc5/bin/python bench/load.py

clean:
	rm -rf bin $(VENV)
