# opsbot: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo serve train test lint docs bench clean help

help:
	@echo "make demo    install (idempotent), train if needed, start everything, chat in the terminal"
	@echo "make test    lint (ruff, mypy), then the test suite (what CI runs)"
	@echo "make lint    ruff check, mypy and the documentation's strict build"
	@echo "make docs    serve the documentation (docs/) at http://127.0.0.1:8000 while you edit it"
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

# NO_MKDOCS_2_WARNING: mkdocs-material's banner about MkDocs 2.0 is not ours to act on.
lint: install
	@$(BIN)/ruff check .
	@$(BIN)/mypy
	@NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs: install
	@NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

# Two test processes (pytest-xdist), each module in one: a module's servers and model are
# its own, and the machine has two cores.
test: lint
	@$(BIN)/python -m pytest -n 2 --dist loadfile

bench: install
	@$(BIN)/python -m bench.nlu

clean:
	rm -rf models .opsbot .pytest_cache site
