# gdflows — two entry points for a fresh machine (see README.md):
#   make book   set up .venv, execute every notebook at paper settings, run the benchmarks, build the book
#   make test   set up .venv (and Chromium), lint, run the tests (numerics, notebooks in smoke mode, book, pages)
# Everything is installed into .venv with the exact versions of constraints.txt.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUILD ?= build
# Notebooks at once in smoke runs (paper runs keep one: their wall times are results).
JOBS ?= 2

.PHONY: setup book reproduce smoke html test lint chromium clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "gdflows needs Python 3.11 or newer (set PYTHON=...)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[book,test]"
	@touch $@

setup: $(STAMP)

chromium:
	@bash scripts/install-chromium.sh

## The main job: every notebook at paper settings, the benchmarks, then the book.
book: setup
	$(BIN)/python -m gdflows_book reproduce --build-dir $(BUILD)
	$(BIN)/python -m gdflows_book book --build-dir $(BUILD)

## Execute notebooks only (NAMES="F1 F2" for some of them; BUILD=dir for another build tree).
reproduce: setup
	$(BIN)/python -m gdflows_book reproduce --build-dir $(BUILD) $(NAMES)

smoke: setup
	$(BIN)/python -m gdflows_book reproduce --smoke --jobs $(JOBS) --build-dir $(BUILD) $(NAMES)

html: setup
	$(BIN)/python -m gdflows_book book --build-dir $(BUILD)

lint: setup
	$(BIN)/ruff check src tests benchmarks book/_ext notebooks
	$(BIN)/ruff format --check src tests benchmarks book/_ext notebooks

test: setup chromium lint
	$(BIN)/python -m pytest

clean:
	rm -rf build _build
