#!/usr/bin/env bash
# The GPU window in one call: on a bare, offline GPU machine that has this repository (with vendor/ from
# scripts/fetch_gpu_wheels.sh) and a Python with torch+CUDA; it stops itself at LIMIT_S (480 s on the GPU):
#   1. installs vendor/wheels into a work folder (pip --no-index --target) and puts it on PYTHONPATH
#   2. checks: every import (stops here, naming what is missing), the GPU's compute mode (exclusive-process
#      runs the study one job at a time), /dev/shm, pip's configuration; versions and the matmul peaks
#   3. smoke: one short training of resnet20 on CIFAR-10 JPEG (which also decodes the images once into
#      the cache the study reads)
#   4. experiment=gpu_reference (conf/experiment/gpu_reference.yaml) under a timeout that leaves time to
#      pack: jobs run in study order (every model's seed 0, then seed 1, ...), so a cut-off keeps whole
#      seeds; after training, the sweep's closing pass times each model alone on the idle GPU
#   5. packs into --out (default $OUT) four flat files: gpu_reference.log (everything printed),
#      summary.md (with the time of every phase beside its GPU estimate), versions.json and
#      records.tar.gz (record.json, run.log and test_outcomes.npz of each run; no weights or checkpoints)
# A signal to this script, or its death, ends every process it started (each phase runs in its own
# session, watched). Exit 0 when every smoke and study job is complete, 3 when an import is missing, else 1.
#
# Usage: bash scripts/gpu_reference.sh [--cpu-dry] [--out DIR]
#   --cpu-dry   the same phases on a CPU: device=cpu, two cheap models x two seeds, a few steps each, 2 jobs
#               of 1 thread, the real quiet wait; ends by building a report from the packed records
#   PY=python3  the interpreter; DATA=path/to/cifar10-jpg.tar.gz (default vendor/data/, else ../shared/data/);
#   LIMIT_S     the whole call's time limit (default 480 s on the GPU)
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
  MODELS=resnet20
  STUDY_MODELS=resnet20,preact_resnet20
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
  LIMIT_S=${LIMIT_S:-480}
  SMOKE_S=${SMOKE_S:-90}
  MODELS=resnet20   # one model proves the path and builds the data cache; the study trains all six
  STUDY_MODELS=resnet20,preact_resnet20,wrn_16_2,densenet_bc_40_12,shufflenet_v2_x2_0,efficientnetv2_b0
  SEEDS=0,1,2
  # 2 s of training: hundreds of steps, enough to prove the path on real images.
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

# Each phase's seconds, and the GPU estimate it is checked against (conf/experiment/gpu_reference.yaml
# adds these up: at most LIMIT_S). The study's estimate excludes its closing pass, timed on its own.
declare -A GPU_ESTIMATE_S=([install]=10 [imports]=20 [checks]=15 [smoke]=60 [study]=270 [closing_pass]=45 [pack]=10)
PHASES=()
PHASE_START=$SECONDS
phase_done() {  # phase_done NAME [SECONDS]: record how long NAME took (default: since the last phase ended)
  local took=${2:-$((SECONDS - PHASE_START))}
  PHASES+=("$1=$took:${GPU_ESTIMATE_S[$1]:-0}")
  echo "-- phase $1: $took s (GPU estimate ${GPU_ESTIMATE_S[$1]:-?} s)"
  PHASE_START=$SECONDS
}

# Every long command runs in a session of its own, under `timeout`, with a watchdog in that session that
# ends the whole session (the sweep's workers included) once this script is gone, however it died.
CHILD=""
run_bounded() {  # run_bounded SECONDS COMMAND...: its exit status (124 on timeout)
  local limit=$1; shift
  if ! command -v setsid >/dev/null; then  # util-linux missing: timeout's own process group, no watchdog
    timeout --kill-after=15 "$limit" "$@" &
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
  fi
  setsid bash -c 'parent=$1; limit=$2; shift 2
    ( while kill -0 "$parent" 2>/dev/null; do sleep 1; done; kill -TERM 0 ) </dev/null >/dev/null 2>&1 &
    exec timeout --kill-after=15 "$limit" "$@"' _ "$$" "$limit" "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}
stop_children() {
  [ -n "$CHILD" ] || return 0
  kill -TERM -- "-$CHILD" 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$CHILD" 2>/dev/null || return 0; sleep 1; done
  kill -KILL -- "-$CHILD" 2>/dev/null
}
trap 'echo "gpu_reference: stopped by a signal; ending everything it started" >&2; stop_children; finish 143' \
  TERM INT HUP

# 1. The carried wheels.
shopt -s nullglob
WHEELS=(vendor/wheels/*.whl)
if [ ${#WHEELS[@]} -gt 0 ]; then
  # Without any pip configuration: a machine-wide constraint file or index would otherwise apply to these
  # exact, offline wheels (seen here: global.constraint in /etc/xdg/pip).
  unset_pip=$(env | sed -n 's/^\(PIP_[A-Za-z0-9_]*\)=.*/-u \1/p' | tr '\n' ' ')
  # shellcheck disable=SC2086
  env $unset_pip PIP_CONFIG_FILE=/dev/null "$PY" -m pip install --quiet --no-index --no-deps --no-compile \
    --disable-pip-version-check \
    --target "$WORK/site" "${WHEELS[@]}" || { echo "gpu_reference: pip could not install vendor/wheels" >&2; finish 3; }
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
  echo "installed ${#WHEELS[@]} wheels from vendor/wheels"
else
  echo "no vendor/wheels: relying on what $PY has (scripts/fetch_gpu_wheels.sh fetches the rest)"
fi
phase_done install

# 2. Smoke: imports, versions and peaks, one short training per representative.
IMPORT_ARGS=()
$DRY || IMPORT_ARGS=(--cuda)
if ! "$PY" scripts/gpu_smoke_check.py imports "${IMPORT_ARGS[@]}"; then
  echo "gpu_reference: FAILED at the import check; nothing was run" >&2
  finish 3
fi
phase_done imports

# Cheap facts that would break the study later, one line each.
N_JOBS_ARGS=()
if ! $DRY; then
  mode=$(nvidia-smi --query-gpu=compute_mode --format=csv,noheader 2>/dev/null | head -n1)
  echo "check: GPU compute mode ${mode:-unknown (nvidia-smi did not say)}"
  case "$mode" in
    *Exclusive*|*Prohibited*) echo "check: one process per GPU: the study runs one job at a time"
                              N_JOBS_ARGS=(hydra.launcher.n_jobs=1) ;;
  esac
fi
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  echo "check: /dev/shm writable ($(df -h /dev/shm 2>/dev/null | awk 'NR==2 {print $2}') )"
else
  echo "check: no writable /dev/shm: joblib's process workers need it, so the study runs one job at a time"
  N_JOBS_ARGS=(hydra.launcher.n_jobs=1)
fi
pip_config=$("$PY" -m pip config list 2>/dev/null | tr '\n' ' ')
echo "check: pip configuration: ${pip_config:-none} (ignored: the wheels were installed without it)"
"$PY" scripts/gpu_smoke_check.py versions --out "$WORK" --device "$DEVICE" || STATUS=1
phase_done checks

COMMON=(device="$DEVICE" data=cifar10_jpg data.root="$DATA" results_dir="$WORK/results" progress_bar=false)
smoke_s=$(( $(left) - PACK_S < SMOKE_S ? $(left) - PACK_S : SMOKE_S ))
echo "== smoke: one short training of $MODELS (at most $smoke_s s)"
rc=0
run_bounded "$smoke_s" "$PY" -m archbench -m study=gpu_reference_smoke model="$MODELS" seed=0 \
  train.amp=bf16 train.channels_last=true measure.amp=bf16 measure.channels_last=true evaluate.after_train=false \
  "${COMMON[@]}" "${SMOKE_TRAIN[@]}" || rc=$?
[ "$rc" -eq 0 ] || { echo "gpu_reference: the smoke sweep exited $rc" >&2; STATUS=1; }
phase_done smoke

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
  study_start=$SECONDS
  run_bounded "$study_s" "$PY" -m archbench -m experiment=gpu_reference "${COMMON[@]}" "${N_JOBS_ARGS[@]}" \
    "${STUDY_ARGS[@]}" || rc=$?
  # The closing pass (timing each model alone) ran inside the sweep; it wrote how long it took.
  closing=$("$PY" -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["seconds"]))' \
            "$(ls -t "$WORK"/results/sweeps/gpu_reference/*/measurement_pass.json 2>/dev/null | head -n1)" \
            2>/dev/null) || closing=0
  phase_done study $((SECONDS - study_start - closing))
  phase_done closing_pass "$closing"
  if [ "$rc" -ne 0 ]; then
    STATUS=1
    case "$rc" in
      124|75) NOTES+=(--stopped-at "$study_s") ;;  # the packer says whether jobs or only the closing pass were cut
      *) NOTES+=(--note "the study sweep exited $rc") ;;
    esac
  fi
fi

# 4. Pack: summary, versions, records; the log is already in the output folder.
echo "== packing into $OUT_DIR ($(left) s left)"
PACK_ARGS=(--results "$WORK/results" --versions "$WORK/versions.json" --out "$OUT_DIR" --smoke-models "$MODELS"
           --expect-models "$STUDY_MODELS" --expect-seeds "$SEEDS" "${NOTES[@]}")
pack_start=$SECONDS
"$PY" scripts/gpu_reference_pack.py "${PACK_ARGS[@]}" --phases "${PHASES[*]}" >/dev/null || true
phase_done pack $((SECONDS - pack_start))
# Once more with the packing's own time in the table (a second or two: it reads the same records).
"$PY" scripts/gpu_reference_pack.py "${PACK_ARGS[@]}" --phases "${PHASES[*]}" || STATUS=1

if $DRY; then  # the returned records must make a report, as they will once committed
  mkdir -p "$WORK/unpacked"
  if tar -xzf "$OUT_DIR/records.tar.gz" -C "$WORK/unpacked" &&
     "$PY" -m archbench.report results_dir="$WORK/unpacked" out="$WORK/report" >"$WORK/report.log" 2>&1; then
    echo "gpu_reference: a report builds from the packed records: $WORK/report/README.md"
  else
    echo "gpu_reference: no report could be built from the packed records (see $WORK/report.log):" >&2
    tail -n 20 "$WORK/report.log" >&2
    STATUS=1
  fi
fi
echo "gpu_reference: done in $((SECONDS - START)) s, exit $STATUS; work folder $WORK (not packed: weights, checkpoints)"
finish "$STATUS"
