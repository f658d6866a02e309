#!/usr/bin/env bash
# The README's test command: install what is missing, check types, lint and layers, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"; python3 -m ruff check .
echo "== mypy --strict rollouts/"; python3 -m mypy rollouts
echo "== import contracts"; lint-imports
echo "== CRDs match the models"; python3 -m rollouts.cli.main gen-crds --check
echo "== pytest"
python3 -m pytest -q -p no:cacheprovider "$@"
