#!/usr/bin/env bash
# Run on the development machine (it needs the package index) before the GPU check: puts into vendor/
# (git-ignored) what scripts/gpu_reference.sh (and scripts/gpu_smoke.sh) needs on a bare, offline GPU machine that has torch, timm,
# numpy, pandas, scipy, matplotlib, tqdm and joblib but not the packages below.
#   vendor/wheels/  the missing pure-Python packages as wheels, at the versions in constraints.txt
#   vendor/data/    cifar10-jpg.tar.gz, the data experiment=gpu_reference trains on
# torch is NOT fetched: the GPU machine has its own CUDA build. vendor/ plus the tree stays under the
# device tool's 64 MiB (checked at the end): about 2 MB of wheels and the 20 MB archive.
# Idempotent: a wheel or archive already there is kept. Usage: bash scripts/fetch_gpu_wheels.sh
# Then carry vendor/ with the repository (e.g. the device tool's carry=["vendor"]).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
# The GPU machines run Python 3.12; pure-Python wheels (py3-none-any) install on any Python 3.
GPU_PYTHON=${GPU_PYTHON:-3.12}
WHEELS=vendor/wheels
DATA_SRC=${DATA_SRC:-../shared/data/cifar10-jpg.tar.gz}
# hydra-core and its parser runtime, fvcore and what it imports, the Hydra launcher plugins
# (so sweeps with hydra/launcher=... also work there), submitit's one extra dependency, and the optional
# corruption library (its own needs, numpy, scipy, scikit-image, opencv and numba, are on the GPU image).
PACKAGES=(hydra-core omegaconf antlr4-python3-runtime fvcore iopath yacs termcolor portalocker tabulate
          hydra-joblib-launcher hydra-submitit-launcher submitit cloudpickle imagecorruptions-imaug)

mkdir -p "$WHEELS" vendor/data
for package in "${PACKAGES[@]}"; do
  pin=$(grep -i "^${package}==" constraints.txt) || {
    echo "fetch_gpu_wheels: $package has no pin in constraints.txt; add one (name==version) and rerun" >&2
    exit 1
  }
  version=${pin#*==}
  # Wheel file names spell the project with underscores (PEP 427), in lower case as pip writes them.
  stem=$(echo "$package" | tr '[:upper:]-' '[:lower:]_')-$version
  if compgen -G "$WHEELS/$stem-*.whl" >/dev/null; then
    echo "have $stem"
    continue
  fi
  if ! "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$GPU_PYTHON" \
      --dest "$WHEELS" "$pin" 2>/dev/null; then
    # Published as a source distribution only (antlr4-python3-runtime 4.9.3, fvcore, iopath): build
    # the wheel here. They are pure Python, so the wheel built by this Python is py3-none-any.
    echo "no wheel on the index for $pin: building one from its source distribution"
    "$PY" -m pip wheel --quiet --no-deps --no-binary="$package" --wheel-dir "$WHEELS" "$pin"
  fi
  wheel=$(compgen -G "$WHEELS/$stem-*.whl" | head -n1) || true
  case "$wheel" in
    *-none-any.whl) echo "got  $(basename "$wheel")" ;;
    "") echo "fetch_gpu_wheels: no $stem wheel in $WHEELS after the download/build" >&2; exit 1 ;;
    *) echo "fetch_gpu_wheels: $(basename "$wheel") is not pure Python (none-any); it would not install" \
            "on the GPU machine's Python $GPU_PYTHON" >&2; exit 1 ;;
  esac
done

if [ ! -f "$DATA_SRC" ]; then
  echo "fetch_gpu_wheels: $DATA_SRC not found; set DATA_SRC=<path to cifar10-jpg.tar.gz>" >&2
  exit 1
fi
if ! cmp -s "$DATA_SRC" vendor/data/cifar10-jpg.tar.gz; then
  cp "$DATA_SRC" vendor/data/cifar10-jpg.tar.gz.tmp
  mv vendor/data/cifar10-jpg.tar.gz.tmp vendor/data/cifar10-jpg.tar.gz
fi
echo "vendor/: $(ls "$WHEELS" | wc -l) wheels, $(du -sh vendor | cut -f1) in all (carry it with the repository)"
# What the device tool sends: tracked and untracked-not-ignored files, plus the carried vendor/.
tree_kib=$(git ls-files -z --cached --others --exclude-standard | du -ck --files0-from=- 2>/dev/null | tail -n1 | cut -f1)
total_kib=$(( tree_kib + $(du -sk vendor | cut -f1) ))
if [ "$total_kib" -ge $((64 * 1024)) ]; then
  echo "fetch_gpu_wheels: tree + vendor/ is $((total_kib / 1024)) MiB, over the 64 MiB a device call carries" >&2
  exit 1
fi
echo "tree + vendor/: $((total_kib / 1024)) MiB of the 64 MiB a device call carries"
