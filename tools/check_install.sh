#!/usr/bin/env bash
# What a new user gets from a wheel, checked from outside the checkout:
#   1. the wheel holds only govtrain/ (and its dist-info) at the top level;
#   2. a plain install (no extra) has no torch, and from an unrelated directory
#      `govtrain audit verify`, `govtrain specs conform` and `govtrain specs check
#      ConvergenceGovernor` work (TLC may say SKIPPED), while `govtrain run` ends with
#      one line naming the train extra;
#   3. `govtrain report` names the report extra, and with it (still no torch) draws the run;
#   4. the packaged configs are listed and named (`govtrain configs`, `explore small`),
#      and the package is typed (py.typed);
#   5. with the train extra, `govtrain run quickstart --stop-after 20` works there and
#      verifies, and so does the Llama example under the HF Trainer (examples/hf_llama.py).
# Usage: tools/check_install.sh RUN_DIR   (a finished run to audit, e.g. CI's smoke run)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
run="$(cd "$1" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip wheel -q --no-deps -w "$work/dist" "$repo"
wheel="$(ls "$work"/dist/govtrain-*.whl)"
tops="$(python3 -c 'import sys, zipfile; print(*sorted({n.split("/")[0] for n in zipfile.ZipFile(sys.argv[1]).namelist()}))' "$wheel")"
echo "wheel top level: $tops"
for top in $tops; do
    case "$top" in govtrain | govtrain-*.dist-info) ;; *) echo "FAIL: $top in the wheel"; exit 1 ;; esac
done

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel"
gt="$work/venv/bin/govtrain"
mkdir "$work/elsewhere" && cd "$work/elsewhere"
if "$work/venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "FAIL: the base install pulled in torch"; exit 1
fi
"$gt" audit verify "$run"
"$gt" configs | grep -q "^quickstart " || { echo "FAIL: govtrain configs lists no quickstart"; exit 1; }
"$gt" explore small | tail -1
"$work/venv/bin/python" - <<'PY'
from importlib.resources import files
assert files("govtrain").joinpath("py.typed").is_file(), "py.typed is not in the wheel"
print("py.typed: shipped")
PY
"$gt" specs conform "$run" >/dev/null && echo "specs conform: ok"
set +e
"$gt" specs check ConvergenceGovernor; rc=$?
"$gt" run --stop-after 1 2>"$work/err"; run_rc=$?
set -e
[ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || { echo "FAIL: specs check exit $rc"; exit 1; }
echo "govtrain run without the extra (exit $run_rc): $(cat "$work/err")"
[ "$run_rc" -eq 1 ] && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "govtrain\[train\]" "$work/err" \
    || { echo "FAIL: expected one line naming govtrain[train]"; exit 1; }

"$gt" report "$run" -o "$work/report" 2>"$work/err" && { echo "FAIL: report without matplotlib"; exit 1; }
grep -q "govtrain\[report\]" "$work/err" || { echo "FAIL: expected a line naming govtrain[report]"; exit 1; }
"$work/venv/bin/pip" install -q -c "$repo/constraints/ci.txt" "$wheel[report]"
"$gt" report "$run" -o "$work/report" | tail -1
"$work/venv/bin/python" -c "import torch" 2>/dev/null && { echo "FAIL: [report] pulled in torch"; exit 1; }

"$work/venv/bin/pip" install -q -c "$repo/constraints/ci.txt" "$wheel[train]"
"$gt" run quickstart --stop-after 20 --run-dir "$work/elsewhere/run" --no-progress >/dev/null
"$gt" audit verify "$work/elsewhere/run"
"$work/venv/bin/python" "$repo/examples/hf_llama.py" --steps 12 --run-dir "$work/elsewhere/llama" | tail -1
"$gt" audit verify "$work/elsewhere/llama"
echo "install check: ok"
