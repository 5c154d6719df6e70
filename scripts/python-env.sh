#!/usr/bin/env bash
# The independent checkers the tests use, in a venv at <repo>/.venv: DuckDB, pyarrow and Polars
# (Parquet readers for the archive), jsonschema, numpy + scipy (exact drift statistics), and
# prometheus-client (the official parser of the /metrics text).
# Idempotent: an existing venv that imports them all is reused. Prints the venv's python.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="$repo/.venv"
py="$venv/bin/python"
if [ -x "$py" ] && "$py" -c 'import duckdb, pyarrow, polars, pytz, jsonschema, numpy, scipy, prometheus_client' 2>/dev/null; then
  echo "$py"
  exit 0
fi
echo "python-env: creating $venv with duckdb, pyarrow, polars, jsonschema, numpy, scipy and prometheus-client (once)" >&2
python3 -m venv "$venv" >&2
"$py" -m pip install --quiet --disable-pip-version-check 'duckdb>=1.1' 'pyarrow>=17' 'polars>=1.0' pytz 'jsonschema>=4' 'numpy>=1.26' 'scipy>=1.11' 'prometheus-client>=0.20' >&2
"$py" -c 'import duckdb, pyarrow, polars, pytz, jsonschema, numpy, scipy, prometheus_client' >&2
echo "$py"
