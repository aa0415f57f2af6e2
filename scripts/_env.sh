# Shared by scripts/test and scripts/demo: make .venv with the provider and its test tools, once.
# Sourced, not run. Needs only Python 3.11 on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV="$ROOT/.venv"
STAMP="$VENV/.installed-$(cat pyproject.toml constraints.txt scripts/_env.sh | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  echo "==> setting up $VENV (first run installs Airflow; about 2 minutes)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
  # Byte-compile on install: without .pyc files every `import airflow` costs seconds more.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --compile -c constraints.txt -e ".[test,docs]"
  rm -f "$VENV"/.installed-* && touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# Airflow state for tests and the demo stays inside the checkout, never in ~/airflow.
export PYTHONDONTWRITEBYTECODE=
