#!/usr/bin/env bash
# Creates .venv with the newest Python >= 3.11 found (3.13 preferred, as on Lambda) and installs
# the project with everything the local stack and tests need. Idempotent; `make dev` calls it
# only when pyproject.toml changed.
#
# --python-only: the .venv alone, without PostgreSQL; what `make test-fast` needs (ruff, mypy and
# tests/unit start no server), so a contributor can run it before installing any database.
set -euo pipefail
cd "$(dirname "$0")/.."

python_only=false
case "${1:-}" in
  "") ;;
  --python-only) python_only=true ;;
  *) echo "unknown option: $1; usage: bash scripts/bootstrap.sh [--python-only]" >&2; exit 2 ;;
esac

find_python() {
  local candidates=()
  for minor in 13 12 11; do
    command -v "python3.$minor" >/dev/null 2>&1 && candidates+=("$(command -v "python3.$minor")")
    # pyenv installs that are not on PATH (pyenv's shims refuse versions not selected).
    for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3."$minor".*/bin/python3."$minor" /usr/bin/python3."$minor" /usr/local/bin/python3."$minor"; do
      [ -x "$p" ] && candidates+=("$p")
    done
  done
  command -v python3 >/dev/null 2>&1 && candidates+=("$(command -v python3)")
  for p in "${candidates[@]}"; do
    if "$p" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then
      echo "$p"; return 0
    fi
  done
  return 1
}

need_apt=()
# PostgreSQL 15 server binaries (the local "Aurora") and pgbench.
if ! $python_only && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need_apt+=(postgresql postgresql-contrib)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need_apt[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "missing: ${need_apt[*]}; install them with: sudo apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
fi

PY=$(find_python) || { echo "no Python >= 3.11 found; install python3.13 (or 3.11+) and retry" >&2; exit 1; }
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  rm -rf .venv
  echo "creating .venv with $PY ($("$PY" --version))"
  "$PY" -m venv .venv
fi
# This machine's pip.conf lists local package directories that may be absent: drop that noise.
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
echo "installing the project and its dev dependencies into .venv (first run takes a few minutes)"
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
# functions/ and ops/ themselves go on sys.path (as Lambda's /var/task is), so a handler package
# added later (functions/<name>/) imports without reinstalling; the editable install's own
# finder only knows the packages that existed when it ran.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "$PWD/functions" "$PWD/ops" > "$site/aurora_sync_source_roots.pth"
.venv/bin/python -c 'import aurora_sync, aurora_sync_ops, moto, fakesnow, hvac' \
  || { echo "the .venv install is incomplete; see the pip output above" >&2; exit 1; }
