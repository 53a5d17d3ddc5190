#!/usr/bin/env bash
# The project's one test command (`make test`): lint, pytest, every Molecule
# scenario. Every part runs even when an earlier one fails; a summary with the
# time each part took is printed at the end, and the exit code is non-zero if
# any part failed.
#   SCENARIOS="common postgresql" make test   # a subset of Molecule scenarios
#   SKIP_MOLECULE=1 make test                  # lint + pytest only
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" NO_COLOR=1 PY_COLORS=0 ANSIBLE_FORCE_COLOR=0

results=()
failed=0
t_all=$(date +%s)

run_part() {  # name, command...
  local name=$1; shift
  local t0 rc
  t0=$(date +%s)
  printf '\n===== %s =====\n' "$name"
  "$@"; rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then results+=("$(printf '%-34s %-6s %5ss' "$name" ok "$dt")")
  else results+=("$(printf '%-34s %-6s %5ss  (exit %s)' "$name" FAILED "$dt" "$rc")"); failed=1; fi
  return 0
}

run_pytest() {
  pytest -q tests
  local rc=$?
  # Exit 5 means "no tests collected": a failure once test files exist.
  if [ $rc -eq 5 ] && [ -z "$(find tests -name 'test_*.py' -print -quit)" ]; then
    echo "pytest: no test files yet"; return 0
  fi
  return $rc
}

run_part "lint" make --no-print-directory lint
run_part "pytest" run_pytest

if [ "${SKIP_MOLECULE:-0}" != 1 ]; then
  scenarios=${SCENARIOS:-$(for f in molecule/*/molecule.yml; do basename "$(dirname "$f")"; done)}
  for s in $scenarios; do
    run_part "molecule $s" molecule test -s "$s"
  done
fi

printf '\n===== summary =====\n'
printf '%s\n' "${results[@]}"
printf '%-34s %-6s %5ss\n' "total" "$([ $failed -eq 0 ] && echo ok || echo FAILED)" "$(( $(date +%s) - t_all ))"
exit $failed
