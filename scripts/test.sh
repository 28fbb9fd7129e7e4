#!/usr/bin/env bash
# Runs every check and test: install/build, lint, typecheck, unit and property tests, then the
# component and e2e tests against a real libvirtd (scripts/backend.sh; stopped again afterwards if
# this run started it). Keeps going after a failing step so one run reports them all; exits
# non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

backend_dir=${VIRTPROXYD_TEST_BACKEND_DIR:-/run/libvirt/backend}
log=$(mktemp)
failed=()
trap 'rm -f "$log"' EXIT

step() {
  local name=$1
  shift
  echo "==> $name"
  if ! "$@"; then
    failed+=("$name")
    echo "==> $name FAILED"
  fi
}

# Compiled tests are found from their sources, so stale files left in dist/ never run.
compiled_tests() {
  local d
  for d in "$@"; do
    [[ -d test/$d ]] && find "test/$d" -name '*.test.ts'
  done | sort | sed 's|^|dist/|; s|\.ts$|.js|'
}

# node --test over the compiled tests of the given folders; the spec reporter's totals go to $log
# for the summary.
run_tests() {
  local concurrency=$1
  shift
  local files
  mapfile -t files < <(compiled_tests "$@")
  if ((${#files[@]} == 0)); then
    echo "(no tests in test/$* yet)"
    return 0
  fi
  node --test --test-reporter=spec --test-concurrency="$concurrency" "${files[@]}" 2>&1 | tee -a "$log"
}

if ! bash scripts/install-deps.sh; then
  echo "test.sh: FAILED (install-deps: nothing else was run)"
  exit 1
fi

step lint npm run lint --silent
step typecheck npm run typecheck --silent
step unit run_tests 1 unit property
step fuzz run_tests 1 fuzz

echo "==> backend"
if backend_state=$(bash scripts/backend.sh start "$backend_dir"); then
  echo "$backend_state"
  if [[ $backend_state == started ]]; then
    trap 'bash scripts/backend.sh stop "$backend_dir" >/dev/null; rm -f "$log"' EXIT
  fi
  export VIRTPROXYD_TEST_BACKEND_DIR=$backend_dir
  step component run_tests 1 component
  step e2e run_tests 1 e2e
  step campaign run_tests 1 campaign
else
  failed+=(backend)
fi

total() {
  awk -v k="$1" '$1 == "ℹ" && $2 == k { n += $3 } END { print n + 0 }' "$log"
}
pass=$(total pass)
fail=$(($(total fail) + $(total cancelled)))
skip=$(($(total skipped) + $(total todo)))
echo "tests: $pass passed, $fail failed, $skip skipped"
if ((${#failed[@]})); then
  echo "test.sh: FAILED (${failed[*]})"
  exit 1
fi
echo "test.sh: all steps passed"
