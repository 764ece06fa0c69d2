#!/usr/bin/env bash
# Creates .venv and installs the full pin set from requirements.lock, then opsbot
# itself (editable) and checks that every top-level dependency imports. Idempotent:
# a second run with an unchanged lock only re-runs the import check.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    PYTHON=python3
  else
    echo "opsbot needs Python 3.11 (Rasa 3.6 with the verified lock). Install python3.11 and rerun, or set PYTHON=/path/to/python3.11." >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.opsbot-lock.sha256"
want=$( (cat requirements.lock pyproject.toml) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing requirements.lock into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24,<25"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      --no-deps --ignore-requires-python -r requirements.lock
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      --no-deps -e .
  echo "$want" > "$stamp"
fi

"$VENV/bin/python" -m opsbot.checks
