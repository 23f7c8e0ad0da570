#!/usr/bin/env bash
# GPU check (at most ~8 minutes on one H100/H200): profile and briefly train the six families' small
# representatives on CIFAR-10 (JPEG image folder) with bf16 + channels_last, compile off and on, and
# print images per second and MFU for each. Records go to $OUT (or results/gpu_smoke); a summary table
# is printed at the end. Usage: bash scripts/gpu_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
OUT_DIR=${OUT:-results/gpu_smoke}
MODELS=${MODELS:-resnet20,preact_resnet20,wrn_16_2,densenet_bc_40_12,shufflenet_v2_x2_0,efficientnetv2_b0}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
for compile in false true; do
  # 60 s per model of training: enough for steady-state throughput; the dataset cache is built once.
  timeout 300 $PY -m archbench -m study=gpu_smoke_compile_$compile data=cifar10_jpg device=cuda \
    model=$MODELS train=quick train.budget.epochs=null train.budget.seconds=20 \
    train.amp=bf16 train.channels_last=true train.compile=$compile train.batch_size=512 \
    measure.amp=bf16 measure.channels_last=true results_dir=$OUT_DIR data.cache_dir=$OUT_DIR/cache || true
done
$PY - "$OUT_DIR" <<'PYEOF'
import json, sys, pathlib
rows = []
for p in sorted(pathlib.Path(sys.argv[1]).glob("runs/*/*/*/seed*/record.json")):
    r = json.loads(p.read_text()); t = r.get("train") or {}; lat = r.get("latency") or {}
    rows.append((r["study"], r["model"], r["status"], t.get("img_per_s"), t.get("mfu"),
                 (lat.get("batch_1") or {}).get("median_ms"), (lat.get("throughput") or {}).get("img_per_s")))
print(f"{'study':28s} {'model':22s} {'status':9s} {'train img/s':>12s} {'MFU':>7s} {'b1 ms':>7s} {'infer img/s':>12s}")
for s, m, st, ips, mfu, b1, thr in rows:
    f = lambda v, fmt: (fmt % v) if v is not None else "-"
    print(f"{s:28s} {m:22s} {st:9s} {f(ips, '%12.0f')} {f(mfu, '%7.3f')} {f(b1, '%7.2f')} {f(thr, '%12.0f')}")
PYEOF
