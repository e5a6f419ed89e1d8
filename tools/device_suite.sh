#!/usr/bin/env bash
# The one script run on the device machine (H200), from the repository root:
#
#     bash tools/device_suite.sh                       # every step
#     STEPS="build pytest" bash tools/device_suite.sh   # only these steps
#
# Steps (in this order; STEPS picks a subset, default all):
#   build      build/load the extension: model_new.build_extension()
#   pytest     python3 -m pytest tests (all files, keep going)
#   check      run_check.py on #55 (tf32, --ieee, fp16, bf16, --backward) and #56 (tf32, --ieee)
#   memcheck   compute-sanitizer --tool memcheck  python3 tools/sanitize_small.py
#   racecheck  compute-sanitizer --tool racecheck python3 tools/sanitize_small.py
#   ("sanitize" is short for "memcheck racecheck")
#
# Other knobs (environment):
#   OUT             folder for the result files (the device tool sets it; default /tmp/device_suite_out)
#   SUITE_BUDGET_S  wall-clock budget for the whole script (default 570 s: the device tool's
#                   per-command limit is 600 s). A step is skipped when less than its minimum is
#                   left, and each step's timeout is capped by what is left.
#   PYTEST_ARGS     extra pytest arguments, e.g. PYTEST_ARGS="tests/test_gpu_forward.py -k tf32"
#                   (when it names test paths, those replace "tests")
#   CHECKS          subset of run_check runs, e.g. CHECKS="55_tf32 56_ieee" (default all seven)
#
# Files left in $OUT (flat, at most 8): suite.log (all output), summary.txt, pytest.log,
# pytest_junit.xml, check.log, checks.json (every run_check --json merged), sanitize.log.
# A failing step never stops the script; its status goes into the summary.
# Uses the machine's own python3 (torch 2.11 image); creates no venv and installs nothing.

set -uo pipefail
export PYTHONUNBUFFERED=1

cd "$(dirname "${BASH_SOURCE[0]}")/.." || { echo "cannot cd to repo root"; exit 2; }
OUT="${OUT:-/tmp/device_suite_out}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/device_suite.XXXXXX)"
STEPS="${STEPS:-all}"
[ "$STEPS" = "all" ] && STEPS="build pytest check memcheck racecheck"
STEPS="${STEPS//sanitize/memcheck racecheck}"
SUITE_BUDGET_S="${SUITE_BUDGET_S:-570}"
SUITE_T0=$(date +%s)
SUMMARY_FILE="$OUT/summary.txt"
: > "$SUMMARY_FILE"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
remaining() { echo $(( SUITE_BUDGET_S - ($(date +%s) - SUITE_T0) )); }
want() { [[ " $STEPS " == *" $1 "* ]]; }

# step_timeout DEFAULT MIN -> prints the timeout to use, or nothing when the budget is spent
step_timeout() {
    local def=$1 min=$2 left
    left=$(( $(remaining) - 10 ))
    if (( left < min )); then return 1; fi
    (( left < def )) && def=$left
    echo "$def"
}

ROWS=()
record() {  # record NAME STATUS SECONDS [NOTE]
    local row
    row=$(printf "%-16s %-10s %8s s  %s" "$1" "$2" "$3" "${4:-}")
    ROWS+=("$row")
    echo "$row" >> "$SUMMARY_FILE"
    echo ">>> step $1: $2 in $3 s ${4:-}"
}

status_of() {  # exit code -> word
    case "$1" in
        0) echo ok ;;
        124|137) echo TIMEOUT ;;
        *) echo "FAIL($1)" ;;
    esac
}

junit_counts() {  # "N tests, F failed, E errors, S skipped" from a junit xml
    python3 - "$1" <<'EOF' 2>/dev/null || echo "(no junit xml)"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
print(f"{n['tests']} tests, {n['failures']} failed, {n['errors']} errors, {n['skipped']} skipped")
EOF
}

banner() { echo; echo "=================== $* ===================  (t+$(( $(date +%s) - SUITE_T0 ))s)"; }

main() {
    banner "environment"
    echo "steps: $STEPS   budget: ${SUITE_BUDGET_S}s   OUT=$OUT"
    nvidia-smi -L 2>&1 || echo "nvidia-smi not available"
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm --format=csv 2>&1 || true
    python3 - <<'EOF' 2>&1 || echo "python/torch query failed"
import sys, platform
import torch
print("python", sys.version.split()[0], "at", sys.executable, "|", platform.platform())
print("torch", torch.__version__, "| CUDA (torch built with)", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version())
print("cuda available:", torch.cuda.is_available(), "| devices:", torch.cuda.device_count())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device 0:", p.name, f"sm_{p.major}{p.minor}", f"{p.total_memory / 2**30:.1f} GiB",
          f"{p.multi_processor_count} SMs")
conv = getattr(torch.backends.cudnn, "conv", None)
if conv is not None and hasattr(conv, "fp32_precision"):
    print("cudnn.conv.fp32_precision:", conv.fp32_precision)
else:
    print("cudnn.allow_tf32:", torch.backends.cudnn.allow_tf32)
try:
    import pytest_timeout  # noqa: F401
    print("pytest-timeout: present")
except ImportError:
    print("pytest-timeout: MISSING")
EOF
    if command -v nvcc >/dev/null 2>&1; then nvcc --version 2>&1 | tail -n 2; else echo "nvcc not found"; fi
    if command -v compute-sanitizer >/dev/null 2>&1; then
        compute-sanitizer --version 2>&1 | sed -n '1,2p'
    else
        echo "compute-sanitizer not found"
    fi
    sha256sum model_new.py run_check.py reference_model.py 2>/dev/null | sed 's/^/sha256 /'

    # ---------------------------------------------------------------- build
    if want build; then
        banner "build"
        local t0 rc to
        t0=$(now)
        if to=$(step_timeout 480 30); then
            timeout -k 10 "$to" python3 -c "
import time
t = time.time()
import model_new as m
print('import model_new: %.1fs' % (time.time() - t))
print(m.build_extension())
print('second call:', m.build_extension())
print('build step total: %.1fs' % (time.time() - t))
" 2>&1
            rc=$?
            record build "$(status_of $rc)" "$(elapsed "$t0")"
        else
            record build "SKIPPED" 0 "no budget left"
        fi
    fi

    # ---------------------------------------------------------------- pytest
    if want pytest; then
        banner "pytest"
        local t0 rc to targets=tests extra=()
        t0=$(now)
        if python3 -c "import pytest_timeout" >/dev/null 2>&1; then extra+=(--timeout=900); fi
        # shellcheck disable=SC2206
        local user_args=(${PYTEST_ARGS:-})
        for a in "${user_args[@]}"; do
            case "$a" in tests|tests/*) targets="" ;; esac
        done
        if to=$(step_timeout 480 30); then
            # shellcheck disable=SC2086
            timeout -k 10 "$to" python3 -m pytest -q -rfEs --durations=15 -p no:cacheprovider \
                "${extra[@]}" --junitxml="$OUT/pytest_junit.xml" $targets "${user_args[@]}" \
                2>&1 | tee "$OUT/pytest.log"
            rc=${PIPESTATUS[0]}
            record pytest "$(status_of $rc)" "$(elapsed "$t0")" "$(junit_counts "$OUT/pytest_junit.xml")"
        else
            record pytest "SKIPPED" 0 "no budget left"
        fi
    fi

    # ---------------------------------------------------------------- run_check
    if want check; then
        banner "run_check"
        : > "$OUT/check.log"
        local names=(55_tf32 55_ieee 55_fp16 55_bf16 55_bwd 56_tf32 56_ieee)
        [ -n "${CHECKS:-}" ] && read -r -a names <<< "$CHECKS"
        local p56=(--ref problems/level1_56.py --new problems/model_new_56.py)
        local name args t0 rc to
        for name in "${names[@]}"; do
            case "$name" in
                55_tf32) args=() ;;
                55_ieee) args=(--ieee) ;;
                55_fp16) args=(--precision fp16) ;;
                55_bf16) args=(--precision bf16) ;;
                55_bwd)  args=(--backward) ;;
                56_tf32) args=("${p56[@]}") ;;
                56_ieee) args=("${p56[@]}" --ieee) ;;
                *) record "check:$name" "SKIPPED" 0 "unknown check name"; continue ;;
            esac
            if [[ "$name" == 56_* ]] && [ ! -f problems/level1_56.py -o ! -f problems/model_new_56.py ]; then
                record "check:$name" "SKIPPED" 0 "problems/ files missing"; continue
            fi
            t0=$(now)
            if ! to=$(step_timeout 300 20); then
                record "check:$name" "SKIPPED" 0 "no budget left"; continue
            fi
            {
                echo
                echo "######## check_$name: python3 run_check.py ${args[*]}${args[*]:+ }--json check_$name.json"
            } | tee -a "$OUT/check.log"
            timeout -k 10 "$to" python3 run_check.py "${args[@]}" --json "$WORK/check_$name.json" \
                2>&1 | tee -a "$OUT/check.log"
            rc=${PIPESTATUS[0]}
            record "check:$name" "$(status_of $rc)" "$(elapsed "$t0")"
        done
        # merge the JSON files into one (the device tool brings back at most 8 files)
        python3 - "$WORK" "$OUT/checks.json" <<'EOF' || echo "merging check JSON failed"
import json, pathlib, sys
work, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
merged = {}
for f in sorted(work.glob("check_*.json")):
    text = f.read_text()
    try:
        merged[f.stem] = json.loads(text)
    except ValueError:
        merged[f.stem] = {"unparsed": text[:100000]}
dest.write_text(json.dumps(merged, indent=1, sort_keys=True))
print(f"checks.json: {len(merged)} runs merged: {', '.join(merged)}")
EOF
    fi

    # ---------------------------------------------------------------- sanitizers
    local tool
    for tool in memcheck racecheck; do
        want "$tool" || continue
        banner "compute-sanitizer $tool"
        local t0 rc to
        t0=$(now)
        if ! command -v compute-sanitizer >/dev/null 2>&1; then
            record "$tool" "SKIPPED" 0 "compute-sanitizer not on PATH"; continue
        fi
        if ! to=$(step_timeout 300 30); then
            record "$tool" "SKIPPED" 0 "no budget left"; continue
        fi
        local tool_args=(--tool "$tool" --error-exitcode 99 --print-limit 50)
        [ "$tool" = racecheck ] && tool_args+=(--racecheck-report all)
        echo "######## compute-sanitizer ${tool_args[*]} python3 tools/sanitize_small.py" | tee -a "$OUT/sanitize.log"
        PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout -k 10 "$to" \
            compute-sanitizer "${tool_args[@]}" python3 tools/sanitize_small.py 2>&1 | tee -a "$OUT/sanitize.log"
        rc=${PIPESTATUS[0]}
        local note=""
        [ "$rc" = 99 ] && note="sanitizer reported errors"
        [ "$rc" = 1 ] && note="NaN/wrong result in sanitize_small.py"
        record "$tool" "$(status_of $rc)" "$(elapsed "$t0")" "$note"
    done

    # ---------------------------------------------------------------- summary
    banner "summary"
    {
        printf "%-16s %-10s %10s  %s\n" STEP STATUS TIME NOTE
        printf '%s\n' "${ROWS[@]}"
        echo "total wall time: $(( $(date +%s) - SUITE_T0 )) s"
    } | tee "$SUMMARY_FILE"
    local r
    for r in "${ROWS[@]}"; do
        [[ "$r" == *" FAIL("* || "$r" == *" TIMEOUT "* ]] && return 1
    done
    return 0
}

main 2>&1 | tee "$OUT/suite.log"
rc=${PIPESTATUS[0]}
rm -rf "$WORK"
echo "files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit "$rc"
