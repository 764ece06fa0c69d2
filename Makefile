# opsbot: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo serve train test lint bench clean help

help:
	@echo "make demo    install (idempotent), train if needed, start everything, chat in the terminal"
	@echo "make test    lint (ruff, mypy), then the test suite (what CI runs)"
	@echo "make lint    ruff check and mypy only"
	@echo "make install create .venv and install requirements.lock (idempotent)"
	@echo "make train   train the model from data/"
	@echo "make bench   NLU benchmark on the ops data (python -m bench.nlu)"

install:
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/install.sh

demo: install
	@$(BIN)/opsbot demo

serve: install
	@$(BIN)/opsbot demo --serve

train: install
	@$(BIN)/opsbot train

lint: install
	@$(BIN)/ruff check .
	@$(BIN)/mypy

test: lint
	@$(BIN)/python -m pytest

bench: install
	@$(BIN)/python -m bench.nlu

clean:
	rm -rf models .opsbot .pytest_cache
