#!/usr/bin/env bash
# The project's one test command (`make test`): lint, pytest, every Molecule
# scenario. Every part runs even when an earlier one fails; a summary with the
# time each part took is printed at the end, and the exit code is non-zero if
# any part failed.
#   SCENARIOS="common postgresql" make test   # a subset of Molecule scenarios
#   SKIP_MOLECULE=1 make test                  # lint + pytest only
#   MOLECULE_JOBS=1 make test                  # one scenario at a time
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

# Molecule scenarios, MOLECULE_JOBS (default 2) at a time: they are separate
# containers and networks, and mostly wait on package installs and services,
# so two share two cores well. Longest first, so both queues end together.
# Each scenario's output is kept in .cache/test-logs/ and printed when it ends.
run_scenario() {  # name
  local s=$1 t0 rc dt
  t0=$(date +%s)
  molecule test -s "$s" >"$logs/$s.log" 2>&1; rc=$?
  dt=$(( $(date +%s) - t0 ))
  {
    flock 9
    printf '\n===== molecule %s (exit %s, %ss) =====\n' "$s" "$rc" "$dt"
    cat "$logs/$s.log"
    echo "$s $rc $dt" >>"$logs/results"
  } 9>"$logs/.lock"
}

if [ "${SKIP_MOLECULE:-0}" != 1 ]; then
  all=$(for f in molecule/*/molecule.yml; do basename "$(dirname "$f")"; done)
  longest_first="cluster vector_search single_node postgresql monitoring nginx common ollama pgbouncer redis"
  default_order=$( (for s in $longest_first; do grep -qx "$s" <<<"$all" && echo "$s"; done
                    grep -vxF -f <(printf '%s\n' $longest_first) <<<"$all") || true)
  scenarios=${SCENARIOS:-$default_order}
  logs=.cache/test-logs
  mkdir -p "$logs"
  rm -f "$logs/results"
  t_mol=$(date +%s)
  for s in $scenarios; do
    while [ "$(jobs -rp | wc -l)" -ge "${MOLECULE_JOBS:-2}" ]; do wait -n; done
    printf '\n----- molecule %s started (%ss into the scenarios)\n' "$s" "$(( $(date +%s) - t_mol ))"
    run_scenario "$s" &
  done
  wait
  for s in $scenarios; do
    read -r _ rc dt < <(grep "^$s " "$logs/results" || echo "$s missing 0")
    if [ "$rc" = 0 ]; then results+=("$(printf '%-34s %-6s %5ss' "molecule $s" ok "$dt")")
    else results+=("$(printf '%-34s %-6s %5ss  (exit %s)' "molecule $s" FAILED "$dt" "$rc")"); failed=1; fi
  done
  results+=("$(printf '%-34s %-6s %5ss' "molecule (all, ${MOLECULE_JOBS:-2} at a time)" "" "$(( $(date +%s) - t_mol ))")")
fi

printf '\n===== summary =====\n'
printf '%s\n' "${results[@]}"
printf '%-34s %-6s %5ss\n' "total" "$([ $failed -eq 0 ] && echo ok || echo FAILED)" "$(( $(date +%s) - t_all ))"
exit $failed
