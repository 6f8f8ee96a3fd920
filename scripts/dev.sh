#!/usr/bin/env bash
# Set up everything earmark needs on a fresh Debian/Ubuntu machine, then run one task.
#   bash scripts/dev.sh demo    # synthetic catalogue -> index -> scan -> report
#   bash scripts/dev.sh test    # the test suite (what CI runs)
# Installs the system libraries (libchromaprint, ffmpeg for the tests' encoders) with apt when they
# are missing, and the Python package with its dependencies into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

task="${1:-}"
case "$task" in demo|test) ;; *) echo "usage: bash scripts/dev.sh demo|test" >&2; exit 2 ;; esac

need_pkgs=()
ldconfig -p 2>/dev/null | grep -q 'libchromaprint\.so' || need_pkgs+=(libchromaprint1)
if [ "$task" = test ]; then
  command -v ffmpeg >/dev/null 2>&1 || need_pkgs+=(ffmpeg)          # encoders for test audio
  [ -x /usr/bin/chromium ] || need_pkgs+=(chromium chromium-driver)  # the HTML report's browser test
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: ${need_pkgs[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# the demo needs the package; the tests also need the test extra (Ray, moto, a browser driver...)
target=.; [ "$task" = test ] && target='.[test]'
stamp=".venv/.earmark-installed-$task"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e "$target"
  touch "$stamp"
fi

case "$task" in
  demo) exec .venv/bin/earmark demo "${@:2}" ;;
  test)
    .venv/bin/ruff check earmark tests benchmarks fixtures
    exec .venv/bin/python -m pytest -q "${@:2}" ;;
esac
