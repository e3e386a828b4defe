#!/bin/sh
# The whole test suite, as the README and CI run it:
#   1. install build and test dependencies (Debian 12 packages; idempotent)
#   2. check formatting against .clang-format
#   3. release build with -Werror, all tests through ctest
#   4. ASan+UBSan build, all tests through ctest
#   5. TSan build, the concurrency tests (policy reload under evaluation,
#      escalation state, the archive writer thread)
#   6. clang libFuzzer build, each fuzzer briefly on its seed corpus
# Build trees live under build/ in the checkout.  Any failure stops the run
# with a non-zero exit.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=${IMP_JOBS:-2}

step() { printf '\n==== %s ====\n' "$*"; }

step "dependencies"
sh scripts/install-deps.sh

step "formatting"
sh scripts/check-format.sh

step "release build + tests (unit, regress, archive, e2e: jabberd2 + PostgreSQL)"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMP_WERROR=ON >/dev/null
cmake --build build/release -j"$jobs"
ctest --test-dir build/release --output-on-failure -j"$jobs"

step "ASan+UBSan build + tests (e2e: the sm runs with libasan preloaded)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DIMP_WERROR=ON -DIMP_SANITIZE=ON -DIMP_BENCH=OFF >/dev/null
cmake --build build/asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build/asan --output-on-failure -j"$jobs"

step "TSan build + concurrency tests (reload, state, archive writer)"
cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DIMP_WERROR=ON -DIMP_TSAN=ON -DIMP_BENCH=OFF >/dev/null
cmake --build build/tsan -j"$jobs"
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build/tsan --output-on-failure -R 'reload|policy|state|archive\.writer'

step "libFuzzer build + short fuzz runs"
CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DIMP_WERROR=ON -DIMP_FUZZ=ON -DIMP_SANITIZE=ON -DIMP_BENCH=OFF >/dev/null
cmake --build build/fuzz -j"$jobs"
ctest --test-dir build/fuzz --output-on-failure -R '^fuzz\.'

step "all test stages passed"
