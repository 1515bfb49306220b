# pybridge: two commands do everything.
#   make setup   venvs from PyPI (real rpyc 5.x / 6.x peers, pydantic 1 and 2, with and
#                without the msgpack extension), Go modules, bin/pybridge
#   make test    go vet, staticcheck, tidy check, ruff, go test ./..., pytest under every venv
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

VENV := .venv
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
# pyenv's versions folder first (its shims only work for the global version), then PATH
pyfind = $(or $(lastword $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python$(1))),$(shell command -v python$(1) 2>/dev/null))
# the main interpreter: pyenv's 3.11, else any python3 on PATH
PY311 := $(or $(call pyfind,3.11),$(shell command -v python3 2>/dev/null))
PY39  := $(call pyfind,3.9)
PY313 := $(call pyfind,3.13)

# name | interpreter | packages
VENVS := rpyc5 rpyc6 pydantic1 py313 rpycng
rpyc5_PY     := $(PY311)
rpyc5_PKGS   := rpyc==5.3.1 pytest msgpack 'pydantic>=2,<3'
rpyc6_PY     := $(PY311)
rpyc6_PKGS   := rpyc==6.0.2 pytest msgpack 'pydantic>=2,<3' ruff==0.14.0
pydantic1_PY   := $(PY39)
pydantic1_PKGS := rpyc==5.3.1 pytest 'pydantic>=1.10,<2'
py313_PY     := $(PY313)
py313_PKGS   := pytest msgpack 'pydantic>=2,<3'
# rpyc-ng (a fork of rpyc 6 with its own protocol; it imports as `rpyc`, so it cannot share
# a venv with rpyc) and robotframework-rpycremote, whose only RPyC dependency is rpyc-ng
# (>=7.0.10) itself: one venv holds both, no --no-deps needed
rpycng_PY    := $(PY311)
rpycng_PKGS  := rpyc-ng==7.0.15 robotframework-rpycremote==0.0.30 pytest msgpack 'pydantic>=2,<3'

GO ?= go

# On a machine without some interpreter, the venvs it needs are left out and the test
# legs that use them say they are skipped; under CI=true a missing leg is an error.
CI ?=
missing = if [ -n "$(CI)" ]; then echo "CI: $(1)"; exit 1; else echo "SKIPPED: $(1)"; fi

.PHONY: help setup test build venvs gotest pytest vet bench fuzz clean golden
help:
	@echo "make setup   build bin/pybridge, Go modules, the test venvs (from PyPI)"
	@echo "make test    go vet + tidy check, go test ./... (and the embedded tests under"
	@echo "             3.9, 3.13 and Debian's python3), pytest under every venv"
	@echo "make bench   Go benchmarks, bench/load.py (rpyc's server vs pybridge), bench/refcall.py, bench/idle.py"
	@echo "make fuzz    each Go fuzz target for FUZZTIME (default 30s)"
	@echo "make golden  regenerate the brine golden vectors from the real rpyc and rpyc-ng"
	@echo "make clean   remove bin/ and the venvs"

setup: build venvs

venvs: $(addprefix $(VENV)/,$(addsuffix /.ok,$(VENVS)))

# a venv is rebuilt only when its interpreter or package list changes (recorded in .ok)
$(VENV)/%/.ok: FORCE
	@if [ -z "$($*_PY)" ]; then $(call missing,no interpreter for venv $*: its test legs will not run); exit 0; fi; \
	if [ "$$(cat $@ 2>/dev/null)" != "$($*_PY) $($*_PKGS)" ]; then \
	  set -x; rm -rf $(VENV)/$*; \
	  $($*_PY) -m venv $(VENV)/$*; \
	  $(VENV)/$*/bin/python -m pip install -q --disable-pip-version-check $($*_PKGS); \
	  echo "$($*_PY) $($*_PKGS)" > $@; \
	fi

FORCE:

build:
	$(GO) mod download
	$(GO) build -buildvcs=auto -o bin/pybridge ./cmd/pybridge

# go vet, staticcheck (pinned), go.mod/go.sum exactly as `go mod tidy` leaves them (a
# diff fails), and ruff (pinned, in the rpyc6 venv) on the Python
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
vet:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) mod tidy -diff
	@if [ -x $(VENV)/rpyc6/bin/ruff ]; then $(VENV)/rpyc6/bin/ruff check python tests bench scripts; \
	else $(call missing,no ruff in the rpyc6 venv: the Python lint); fi

# The embedded interpreter's Go tests also run under Python 3.9, 3.13 and Debian's
# python3 (one interpreter per test process: PYBRIDGE_TEST_PYTHON picks it).
EMBED_PYTHONS := $(PY39) $(PY313) $(wildcard /usr/bin/python3)
gotest:
	$(GO) test -race -count=1 ./...
	@[ -n "$(PY39)" ] || $(call missing,no python3.9: the embedded tests under 3.9)
	@[ -n "$(PY313)" ] || $(call missing,no python3.13: the embedded tests under 3.13)
	for p in $(EMBED_PYTHONS); do \
	  PYBRIDGE_TEST_PYTHON=$$p $(GO) test -count=1 ./pyhost/internal/cpython || exit 1; \
	  PYBRIDGE_TEST_PYTHON=$$p $(GO) test -count=1 -run Embedded ./pyhost || exit 1; \
	done

# The whole suite runs once per rpyc client version (6.0.2, 5.3.1), the serve tests under
# both isolations (spawned workers, and Python embedded in the pybridge process; the
# spawned workers are pybridge processes with Python embedded under rpyc 6, Python
# processes that Go relays to under rpyc 5), and so
# do the tests where the client's protocol meets the hosted Python with the rpyc-ng
# client (with its own tests and robotframework-rpycremote's; the rest of the serve suite
# passes under ng too, CI time keeps it to these; ng's own tests also with Python
# workers, relayed); the
# registry's tests (tests/registry) run once per rpyc version, as they have no isolation; the
# Python peer's own tests also run under Python 3.9 with pydantic 1 and no msgpack, under
# Python 3.13, and with the built-in msgpack codec forced.
# leg = a venv and what runs in it; a leg whose venv could not be made is skipped
leg = if [ -x $(VENV)/$(1)/bin/python ]; then $(2) $(VENV)/$(1)/bin/python -m pytest -q $(3); \
      else $(call missing,no venv $(1): pytest $(3) $(2)); fi
NG_TESTS := $(addprefix tests/serve/,test_rpycng.py test_robot.py test_classic.py test_service.py \
	test_stdio_tls_dialects.py test_seed_problems.py test_conformance.py test_metrics.py)
pytest: build
	@$(call leg,rpyc6,,tests)
	@$(call leg,rpyc6,PYBRIDGE_ISOLATION=embedded,tests/serve)
	@$(call leg,rpyc5,PYBRIDGE_WORKER=python,tests)
	@$(call leg,rpyc5,PYBRIDGE_ISOLATION=embedded,tests/serve)
	@$(call leg,rpycng,,$(NG_TESTS))
	@$(call leg,rpycng,PYBRIDGE_ISOLATION=embedded,$(NG_TESTS))
	@$(call leg,rpycng,PYBRIDGE_WORKER=python,tests/serve/test_rpycng.py tests/serve/test_robot.py)
	@$(call leg,pydantic1,,tests/peer)
	@$(call leg,py313,,tests/peer)
	@$(call leg,rpyc6,PYBRIDGE_CODEC=builtin,tests/peer)

test: vet gotest pytest

golden:
	$(VENV)/rpyc5/bin/python scripts/gen_brine_golden.py bridge/brine/testdata/golden.json
	$(VENV)/rpycng/bin/python scripts/gen_brine_golden.py bridge/brine/testdata/golden_ng.json

# benchmarks: Go micro-benchmarks, then the load script (rpyc's server vs pybridge serve)
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(VENV)/rpyc5/bin/python bench/load.py
	$(VENV)/rpyc5/bin/python bench/service.py
	$(VENV)/rpyc5/bin/python bench/refcall.py
	$(VENV)/rpyc5/bin/python bench/idle.py

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./bridge/brine
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrameAndParse$$' -fuzztime $(FUZZTIME) ./bridge/wire
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFrame$$' -fuzztime $(FUZZTIME) ./pyhost/internal/workerproto
	$(GO) test -run '^$$' -fuzz '^FuzzHandle$$' -fuzztime $(FUZZTIME) ./registry
	$(GO) test -run '^$$' -fuzz '^FuzzBrineLoad$$' -fuzztime $(FUZZTIME) ./pyhost/internal/cpython
	$(GO) test -run '^$$' -fuzz '^FuzzChannelMessage$$' -fuzztime $(FUZZTIME) ./pyhost/internal/cpython
	$(GO) test -run '^$$' -fuzz '^FuzzServeRequest$$' -fuzztime $(FUZZTIME) ./pyhost/internal/cpython

clean:
	rm -rf bin $(VENV)
