#!/usr/bin/env bash
# The GPU window in one call: on a bare, offline GPU machine that has this repository (with vendor/ from
# scripts/fetch_gpu_wheels.sh) and a Python with torch+CUDA, and stops itself before 9 minutes:
#   1. installs vendor/wheels into a work folder (pip --no-index --target) and puts it on PYTHONPATH
#   2. smoke: every import (stops here, naming what is missing), versions and the matmul peak of each
#      precision, and one short training of each representative on CIFAR-10 JPEG (which also decodes the
#      images once into the cache the study reads)
#   3. experiment=gpu_reference (conf/experiment/gpu_reference.yaml) under a timeout that leaves time to
#      pack: jobs run in study order (every model's seed 0, then seed 1, ...), so a cut-off keeps whole
#      seeds; an interrupted job checkpoints and writes no record, every finished record stays
#   4. packs into --out (default $OUT) four flat files: gpu_reference.log (everything printed),
#      summary.md, versions.json (versions, peaks and every row) and records.tar.gz (record.json and
#      run.log of each run; no weights or checkpoints). Work folders live outside --out.
# Exit 0 when every smoke and study job is complete, 3 when an import is missing, else 1.
#
# Usage: bash scripts/gpu_reference.sh [--cpu-dry] [--out DIR]
#   --cpu-dry   the same path on a CPU: device=cpu, two cheap models (smoke, and x two seeds in the study),
#               a few steps each, 2 jobs of 1 thread; each run still evaluates the whole 10,000-image test split
#   PY=python3  the interpreter; DATA=path/to/cifar10-jpg.tar.gz (default vendor/data/, else ../shared/data/);
#   LIMIT_S     the whole call's time limit (default 525 s on the GPU: done before 9 minutes)
set -uo pipefail   # not -e: a failing step is reported and the packing still runs
cd "$(dirname "$0")/.."
REPO=$(pwd)

DRY=false
OUT_DIR=${OUT:-results/gpu_reference_out}
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry) DRY=true ;;
    --out) OUT_DIR=$2; shift ;;
    *) echo "gpu_reference: unknown argument '$1'; use --cpu-dry or --out DIR" >&2; exit 2 ;;
  esac
  shift
done
START=$SECONDS
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/archbench-gpu-reference.XXXXXX")
LOG="$OUT_DIR/gpu_reference.log"
exec > >(tee "$LOG") 2>&1
TEE_PID=$!
finish() {  # the log is whole before the call returns
  exec >&- 2>&-
  wait "$TEE_PID" 2>/dev/null
  exit "$1"
}
echo "gpu_reference: work folder $WORK, output $OUT_DIR"

if $DRY; then
  [ -x .venv/bin/python ] && PY=${PY:-.venv/bin/python}
  DEVICE=cpu
  LIMIT_S=${LIMIT_S:-900}
  SMOKE_S=${SMOKE_S:-300}
  MODELS=resnet20,preact_resnet20
  STUDY_MODELS=$MODELS
  SEEDS=0,1
  SMOKE_TRAIN=(train.budget.steps=2 train.batch_size=16 train.eval_batch_size=500 data.train_size=200
               data.val_size=200 measure.warmup=1 measure.min_reps=2 measure.min_time_s=0 measure.batch_size=4)
  # A few steps of 2 models x 2 seeds through the real study config and launcher: the path, not the numbers.
  STUDY_ARGS=(model="$STUDY_MODELS" seed="$SEEDS" train.budget.epochs=null train.budget.steps=3
              train.batch_size=16 train.eval_batch_size=500 data.train_size=200 data.val_size=200 threads=1
              hydra.launcher.n_jobs=2 measure.warmup=1 measure.min_reps=2 measure.min_time_s=0
              measure.batch_size=4 evaluate.test_subset=20 "evaluate.corruptions=[contrast]"
              "evaluate.severities=[1]")
  # A busy development machine would cache its peaks too low for later real runs: keep them here.
  export XDG_CACHE_HOME="$WORK/cache"
else
  DEVICE=cuda
  LIMIT_S=${LIMIT_S:-525}
  SMOKE_S=${SMOKE_S:-120}
  MODELS=resnet20,preact_resnet20,wrn_16_2,densenet_bc_40_12,shufflenet_v2_x2_0,efficientnetv2_b0
  STUDY_MODELS=$MODELS
  SEEDS=0,1,2
  # 2 s of training each: hundreds of steps of these models, enough to prove the path on real images.
  SMOKE_TRAIN=(train.budget.seconds=2 train.batch_size=512 train.eval_batch_size=1024 measure.warmup=2
               measure.min_reps=5 measure.min_time_s=0.2)
  STUDY_ARGS=()
fi
PY=${PY:-python3}
PACK_S=25   # kept back for packing
DATA=${DATA:-}
if [ -z "$DATA" ]; then
  for candidate in "$REPO/vendor/data/cifar10-jpg.tar.gz" "$REPO/../shared/data/cifar10-jpg.tar.gz"; do
    [ -f "$candidate" ] && { DATA=$candidate; break; }
  done
fi
if [ -z "$DATA" ] || [ ! -f "$DATA" ]; then
  echo "gpu_reference: no CIFAR-10 JPEG archive (looked in vendor/data and ../shared/data); run" \
       "scripts/fetch_gpu_wheels.sh or set DATA=path/to/cifar10-jpg.tar.gz" >&2
  finish 2
fi
left() { echo $((LIMIT_S - (SECONDS - START))); }
STATUS=0

# 1. The carried wheels.
shopt -s nullglob
WHEELS=(vendor/wheels/*.whl)
if [ ${#WHEELS[@]} -gt 0 ]; then
  "$PY" -m pip install --quiet --no-index --no-deps --no-compile --disable-pip-version-check \
    --target "$WORK/site" "${WHEELS[@]}" || { echo "gpu_reference: pip could not install vendor/wheels" >&2; finish 3; }
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
  echo "installed ${#WHEELS[@]} wheels from vendor/wheels"
else
  echo "no vendor/wheels: relying on what $PY has (scripts/fetch_gpu_wheels.sh fetches the rest)"
fi

# 2. Smoke: imports, versions and peaks, one short training per representative.
IMPORT_ARGS=()
$DRY || IMPORT_ARGS=(--cuda)
if ! "$PY" scripts/gpu_smoke_check.py imports "${IMPORT_ARGS[@]}"; then
  echo "gpu_reference: FAILED at the import check; nothing was run" >&2
  finish 3
fi
"$PY" scripts/gpu_smoke_check.py versions --out "$WORK" --device "$DEVICE" || STATUS=1
COMMON=(device="$DEVICE" data=cifar10_jpg data.root="$DATA" results_dir="$WORK/results" progress_bar=false)
smoke_s=$(( $(left) - PACK_S < SMOKE_S ? $(left) - PACK_S : SMOKE_S ))
echo "== smoke: one short training per representative (at most $smoke_s s)"
timeout --kill-after=15 "$smoke_s" "$PY" -m archbench -m study=gpu_reference_smoke model="$MODELS" seed=0 \
  train.amp=bf16 train.channels_last=true measure.amp=bf16 measure.channels_last=true evaluate.after_train=false \
  "${COMMON[@]}" "${SMOKE_TRAIN[@]}" || { echo "gpu_reference: the smoke sweep exited $?" >&2; STATUS=1; }

# 3. The study, stopped in time to pack what finished.
study_s=$(( $(left) - PACK_S ))
NOTES=()
if [ "$study_s" -lt 30 ]; then
  echo "gpu_reference: only $study_s s left after the smoke checks; the study is not started" >&2
  NOTES+=(--note "the study was not started: the smoke checks used the time")
  STATUS=1
else
  echo "== experiment=gpu_reference (at most $study_s s)"
  rc=0
  timeout --kill-after=15 "$study_s" "$PY" -m archbench -m experiment=gpu_reference "${COMMON[@]}" \
    "${STUDY_ARGS[@]}" || rc=$?
  if [ "$rc" -ne 0 ]; then
    STATUS=1
    case "$rc" in
      124|75) NOTES+=(--note "the study was stopped at its $study_s s limit (exit $rc): later jobs are missing") ;;
      *) NOTES+=(--note "the study sweep exited $rc") ;;
    esac
  fi
fi

# 4. Pack: summary, versions, records; the log is already in the output folder.
echo "== packing into $OUT_DIR ($(left) s left)"
"$PY" scripts/gpu_reference_pack.py --results "$WORK/results" --versions "$WORK/versions.json" --out "$OUT_DIR" \
  --smoke-models "$MODELS" --expect-models "$STUDY_MODELS" --expect-seeds "$SEEDS" "${NOTES[@]}" || STATUS=1
echo "gpu_reference: done in $((SECONDS - START)) s, exit $STATUS; work folder $WORK (not packed: weights, checkpoints)"
finish "$STATUS"
