"""The names of the numeric settings, with no torch at import: the precisions, `train.amp`'s spellings of
them, the CPU flags that make a precision native, the memory layouts `auto` may pick and the compile modes.
Train, measure, results and report all read them here; `torch_dtype` is the one map to torch's dtypes."""
from __future__ import annotations

# The precisions archbench trains and measures in, by the names records, reports and the peak cache use,
# and the torch dtype each one is (by attribute name, so this module stays torch-free).
DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
PRECISION_NAMES = tuple(DTYPE_NAMES)
# train.amp spells fp32 "off" (no autocast); the low precisions keep their names.
AMP_OFF = "off"
AMPS = tuple(AMP_OFF if name == "fp32" else name for name in PRECISION_NAMES)  # ("off", "bf16", "fp16")
AMP_CHOICES = ("auto", *AMPS)
CHANNELS_LAST_CHOICES = ("auto", True, False)
# CPU feature flags (/proc/cpuinfo) that mean the precision has hardware arithmetic, not a conversion to
# fp32 and back (x86: AVX512-BF16/FP16 or AMX; Arm: BF16, FPHP).
NATIVE_CPU_FLAGS = {"bf16": frozenset({"avx512_bf16", "amx_bf16", "bf16"}),
                    "fp16": frozenset({"avx512_fp16", "amx_fp16", "fphp"})}
# torch.compile modes; reduce-overhead captures CUDA graphs, which small models need to outrun kernel launches.
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
_BOOLEAN_COMPILE = {"true": "default", "yes": "default", "on": "default", "1": "default",
                    "false": "off", "no": "off", "off": "off", "0": "off"}


def precision_name(precision) -> str:
    """"fp32", "bf16" or "fp16" for any accepted spelling: None, False and train.amp's "off" are fp32; a torch
    dtype or its name (`torch.bfloat16`, "bfloat16") is its short name. Anything else raises ValueError."""
    if precision is None or precision is False:  # YAML reads a bare `off` as False
        return "fp32"
    text = str(precision).removeprefix("torch.")
    name = {AMP_OFF: "fp32", **{dtype: short for short, dtype in DTYPE_NAMES.items()}}.get(text, text)
    if name not in PRECISION_NAMES:
        raise ValueError(f"precision={precision!r} is not supported; use 'fp32' (or 'off'), 'bf16' or 'fp16'")
    return name


def precision_label(value) -> str:
    """A recorded precision as a reader sees it: its short name, or the value as written when it is none."""
    try:
        return precision_name(value)
    except ValueError:
        return str(value)


def torch_major_minor(version) -> str:
    """"2.14" for "2.14.1+cu130": the part of torch's version a numerics identity reads (a patch release or a
    local build tag changes no kernel it relies on)."""
    return ".".join(str(version).split("+")[0].split(".")[:2])


def torch_dtype(precision):
    """The torch dtype of a precision (any spelling `precision_name` takes)."""
    import torch  # here, not at the top: the report and the record layer read this module without torch

    return getattr(torch, DTYPE_NAMES[precision_name(precision)])


def autocast_dtype(amp):
    """The dtype autocast runs in for train.amp `amp` (or a precision name); None for fp32 (no autocast)."""
    return None if precision_name(amp) == "fp32" else torch_dtype(amp)


def compile_mode(value) -> str:
    """train.compile as one of COMPILE_MODES; boolean spellings mean default (true) or off (false)."""
    if value in COMPILE_MODES and isinstance(value, str):
        return value
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return "default" if value else "off"
    if isinstance(value, str) and value.strip().lower() in _BOOLEAN_COMPILE:
        return _BOOLEAN_COMPILE[value.strip().lower()]
    raise ValueError(f"train.compile={value!r} is not one of: {', '.join(COMPILE_MODES)} "
                     "(true and false mean default and off)")
