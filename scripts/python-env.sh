#!/usr/bin/env bash
# The independent Parquet readers the tests check the archive with: DuckDB and pyarrow in a venv at
# <repo>/.venv. Idempotent: an existing venv that imports both is reused. Prints the venv's python.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="$repo/.venv"
py="$venv/bin/python"
if [ -x "$py" ] && "$py" -c 'import duckdb, pyarrow, pytz, jsonschema' 2>/dev/null; then
  echo "$py"
  exit 0
fi
echo "python-env: creating $venv with duckdb, pyarrow and jsonschema (once)" >&2
python3 -m venv "$venv" >&2
"$py" -m pip install --quiet --disable-pip-version-check 'duckdb>=1.1' 'pyarrow>=17' pytz 'jsonschema>=4' >&2
"$py" -c 'import duckdb, pyarrow, pytz, jsonschema' >&2
echo "$py"
