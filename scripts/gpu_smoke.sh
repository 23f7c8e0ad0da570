#!/usr/bin/env bash
# The GPU check: one call on a bare, offline GPU machine that has only this repository (with vendor/
# from scripts/fetch_gpu_wheels.sh) and a Python with torch+CUDA. Under 8 minutes on one H100/H200:
#   1. installs vendor/wheels into a temporary folder (pip --no-index --target) and puts it on PYTHONPATH
#   2. imports everything it needs, and stops naming what is missing before running anything
#   3. prints torch, CUDA, cuDNN, the GPU and the matmul peak of each precision (fp32, fp32+tf32, bf16, fp16)
#   4. trains the six small representatives on synthetic inputs, bf16 + channels_last, compile off and on,
#      a `seconds` budget each, then resnet20 on CIFAR-10 JPEG (vendor/data) as a short accuracy check
#   5. prints ONE table (model, precision, compile, img/s, step ms, MFU against the matching peak,
#      peak memory, test top-1) and exits 1 when any job is not `complete` (or its figures are suspect)
# Records, versions.json, smoke_table.md and the logs go to --out DIR (default $OUT, else
# results/gpu_smoke); reruns retrain everything (force=true). The decoded CIFAR cache stays on local
# disk ($ARCHBENCH_CACHE_DIR or ~/.cache/archbench), never in the output folder.
#
# Usage: bash scripts/gpu_smoke.sh [--cpu-dry] [--out DIR] [--models a,b] [--no-accuracy]
#   --cpu-dry      the same path on a CPU machine: device=cpu, one model, tiny budgets, compile off
#   PY=python3     the interpreter (default python3; .venv/bin/python when --cpu-dry finds one)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

DRY=false
ACCURACY=true
OUT_DIR=${OUT:-results/gpu_smoke}
MODELS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry) DRY=true ;;
    --out) OUT_DIR=$2; shift ;;
    --models) MODELS=$2; shift ;;
    --no-accuracy) ACCURACY=false ;;
    *) echo "gpu_smoke: unknown argument '$1'; use --cpu-dry, --out DIR, --models a,b or --no-accuracy" >&2
       exit 2 ;;
  esac
  shift
done

if $DRY; then
  [ -x .venv/bin/python ] && PY=${PY:-.venv/bin/python}
  DEVICE=cpu
  MODELS=${MODELS:-resnet20}
  COMPILES=${COMPILES:-false}   # inductor on 2 CPU cores takes minutes per model; the GPU run covers it
  TRAIN=(train.budget.seconds=2 train.batch_size=32 train.eval_batch_size=256 data.synthetic_size=400)
  MEASURE=(measure.warmup=1 measure.min_reps=2 measure.min_time_s=0 measure.batch_size=4)
  ACC_TRAIN=(train.budget.seconds=3 train.batch_size=64 data.train_size=1000 data.val_size=500)
  MIN_TOP1=0                    # seconds of CPU training prove the path, not the accuracy
  TIME_LIMIT_S=${TIME_LIMIT_S:-600}
else
  DEVICE=cuda
  MODELS=${MODELS:-resnet20,preact_resnet20,wrn_16_2,densenet_bc_40_12,shufflenet_v2_x2_0,efficientnetv2_b0}
  COMPILES=${COMPILES:-false true}
  # 6 s of timed training per job is thousands of steps of these small models: a steady img/s.
  TRAIN=(train.budget.seconds=6 train.batch_size=512 train.eval_batch_size=1024 data.synthetic_size=20000)
  MEASURE=(measure.warmup=5 measure.min_reps=10 measure.min_time_s=0.25)
  # About 10 epochs of resnet20 on an H100: well above 50% test top-1 when training works at all.
  ACC_TRAIN=(train.budget.seconds=20 train.batch_size=512)
  MIN_TOP1=50
  TIME_LIMIT_S=${TIME_LIMIT_S:-450}   # 7.5 minutes: the whole check stays inside 8
fi
PY=${PY:-python3}
OUT_DIR=$(mkdir -p "$OUT_DIR" && cd "$OUT_DIR" && pwd)
START=$SECONDS
STARTED_AT=$(date +%s)   # records older than this are a previous run's and do not count
CHECK=("$PY" "$REPO/scripts/gpu_smoke_check.py")

# 1. The vendored wheels, into a temporary folder that is gone when the script ends.
TARGET=$(mktemp -d "${TMPDIR:-/tmp}/archbench-wheels.XXXXXX")
trap 'rm -rf "$TARGET"' EXIT
shopt -s nullglob
WHEELS=(vendor/wheels/*.whl)
if [ ${#WHEELS[@]} -gt 0 ]; then
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip install --quiet --no-index --no-deps --disable-pip-version-check --target "$TARGET" "${WHEELS[@]}"
  else
    # A Python without pip: a pure-Python wheel is a zip of importable packages, so unpacking is installing.
    echo "no pip in $PY: unpacking the wheels instead"
    "$PY" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' \
      "$TARGET" "${WHEELS[@]}"
  fi
  export PYTHONPATH="$TARGET${PYTHONPATH:+:$PYTHONPATH}"
  echo "installed ${#WHEELS[@]} wheels from vendor/wheels into $TARGET"
else
  echo "no vendor/wheels: relying on what $PY has (scripts/fetch_gpu_wheels.sh fetches the rest)"
fi

if $DRY; then
  # A development machine is rarely idle: a peak measured now would be cached too low and inflate the
  # MFU of later real runs, so the dry run keeps its peaks in the temporary folder.
  export XDG_CACHE_HOME="$TARGET/cache"
fi

# 2. Every import, before anything runs.
IMPORT_ARGS=()
$DRY || IMPORT_ARGS=(--cuda)
"${CHECK[@]}" imports "${IMPORT_ARGS[@]}"

# 3. Versions and the peak of each precision (cached, so the runs below divide by the same figures).
"${CHECK[@]}" versions --out "$OUT_DIR" --device "$DEVICE"

# Each step gets what is left of the time limit; a step cut off leaves no complete record, so the
# table below reports it and the exit code is 1.
remaining() {
  local left=$((TIME_LIMIT_S - (SECONDS - START)))
  echo $((left > 10 ? left : 10))
}
COMMON=(device="$DEVICE" train.amp=bf16 train.channels_last=true measure.amp=bf16 measure.channels_last=true
        results_dir="$OUT_DIR" force=true progress_bar=false seed=0)
EXPECT=()
STATUS=0

# One step: a command under what is left of the time limit, its log in the output folder.
step() {
  local name=$1 rc=0
  shift
  echo "== $name ($(remaining) s left)"
  timeout --kill-after=30 "$(remaining)" "$@" > "$OUT_DIR/$name.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    STATUS=1
    echo "gpu_smoke: $name exited $rc; the last lines of $OUT_DIR/$name.log:" >&2
    tail -n 20 "$OUT_DIR/$name.log" >&2
  fi
}

# 4. Synthetic throughput and MFU, each compile setting a sweep over the models in one process. The
# accuracy check (real images, compile off) runs before the compiled sweep, whose compile times are
# the least predictable part, so a slow compiler cannot starve it.
MIN_ARGS=()
for compile in $COMPILES; do
  study=gpu_smoke_compile_$compile
  step "$study" "$PY" -m archbench -m study="$study" model="$MODELS" data=synthetic train.compile="$compile" \
    "${COMMON[@]}" "${TRAIN[@]}" "${MEASURE[@]}"
  for model in ${MODELS//,/ }; do EXPECT+=("$study/synthetic/$model"); done

  if [ "$compile" = false ] && $ACCURACY; then
    step gpu_smoke_accuracy "$PY" -m archbench study=gpu_smoke_accuracy model=resnet20 data=cifar10_jpg \
      data.root="$REPO/vendor/data/cifar10-jpg.tar.gz" train.compile=false "${COMMON[@]}" "${ACC_TRAIN[@]}" \
      "${MEASURE[@]}"
    EXPECT+=("gpu_smoke_accuracy/cifar10_jpg/resnet20")
    MIN_ARGS=(--min-top1 "gpu_smoke_accuracy=$MIN_TOP1")
  fi
done

# 5. The table; it fails on any job that is missing, not complete, or has MFU against the wrong peak.
rc=0
"${CHECK[@]}" table --out "$OUT_DIR" --since "$STARTED_AT" --expect "${EXPECT[@]}" "${MIN_ARGS[@]}" || rc=$?
[ "$rc" -eq 0 ] || STATUS=1
echo "records, versions.json and smoke_table.md: $OUT_DIR ($((SECONDS - START)) s)"
if [ "$STATUS" -ne 0 ]; then
  echo "gpu_smoke: FAILED" >&2
fi
exit "$STATUS"
