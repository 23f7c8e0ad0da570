"""Generate docs/models.md from the model registry, reference.csv and measured complexity.

    python scripts/gen_model_docs.py                 # writes docs/models.md (a few minutes on CPU)
    python scripts/gen_model_docs.py --output -      # print instead

Every number in the table is measured here with archbench.measure.complexity (fvcore MACs:
one multiply-add = one MAC) on the code as it stands; the family sections are the family
modules' docstrings, so the prose and the code cannot drift apart.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import math
import sys
import warnings
from pathlib import Path

import timm
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archbench.measure.complexity import profile_complexity
from archbench.models import (
    AUTO_SMALL_INPUT_STEM,
    CIFAR_STEM_MAX_SIZE,
    SMALL_REPRESENTATIVES,
    create_model,
    declared_families,
    list_models,
    load_reference,
)

# Each family's section is its declaring module's docstring, in publication order.
FAMILY_MODULES = {family.name: importlib.import_module(family.module) for family in declared_families()}
CLASSES_BY_DATASET = {"CIFAR-10": 10, "CIFAR-100": 100, "ImageNet": 1000}
SMALL_INPUT = 32
# Shown at both small-input strides: the two small representatives, and ShuffleNetV2 1.0x, the
# width that stays within the MAC band at stride 8.
STRIDE_MODELS = ("shufflenet_v2_x1_0", "shufflenet_v2_x2_0", "efficientnetv2_b0")
# Why `auto` keeps stride 16 for ShuffleNetV2 and EfficientNetV2: measurements made outside this
# script (it only measures complexity), with where they come from.
STRIDE_EVIDENCE = [
    ("Accuracy (issue 16, one seed, the `cpu_mini` recipe: 10k CIFAR-10 JPEG training images, 3 epochs, "
     "torchvision pipeline, 2-core AMD EPYC): `shufflenet_v2_x2_0` reached 39.2% test top-1 at stride 16 and "
     "37.3% at stride 8, with three times the training time. One seed cannot separate the two, but it shows no "
     "gain worth the cost at CPU-scale budgets."),
    ("Training speed (`python benchmarks/precision.py --strides`, batch 128, 32 px, 2-core AMD EPYC with "
     "AVX512-BF16, torch 2.14.1, in the precision `auto` picks): STRIDE_SPEEDS"),
    ("MAC band: at stride 8 both small representatives leave the 20-150 M band of the CPU-scale studies "
     "(table above); ShuffleNetV2 1.0x would be the in-band stride-8 choice."),
]
STRIDE_SPEEDS = (
    "stride 8 trained at about half the speed of stride 16: `shufflenet_v2_x2_0` 7.2 vs 14.9 img/s (fp32 NCHW), "
    "`efficientnetv2_b0` 6.7 vs 12.2 img/s (bf16 channels_last). Measured while other jobs loaded the 2 cores "
    "(1-minute load average 5 to 7), so the absolute figures are low and only the ratio is meant; rerun on an "
    "idle machine before quoting them.")


def measure(name: str, num_classes: int, input_size: int) -> dict:
    model = create_model(name, num_classes=num_classes, input_size=input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = profile_complexity(model, (3, input_size, input_size))
    return {"params": stats["params"], "macs": stats["macs"], "stem": model.archbench_info["stem"],
            "builder": model.archbench_info["builder"], "final_map": format_map(stats["final_feature_map"])}


def format_map(size: list[int] | None) -> str:
    return "-" if size is None else f"{size[0]}x{size[1]}"


def format_macs(macs: float) -> str:
    return f"{macs / 1e9:.2f} G" if macs >= 1e9 else f"{macs / 1e6:.1f} M"


def format_published(value: float, unit: str = "") -> str:
    return "" if math.isnan(value) else f"{value:g}{unit}"


def model_rows(names: list[str]) -> list[str]:
    reference = load_reference().set_index("model")
    rows = [
        ("| model | family | paper | builder | params | published params | input | stem | final map | MACs | "
        "published MACs | MACs at 32 px (stem, final map) | published top-1 err. (%) |"),
        "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        ref = reference.loc[name]
        num_classes = CLASSES_BY_DATASET[ref.dataset]
        natural = measure(name, num_classes, int(ref.input_size))
        small = measure(name, 10, SMALL_INPUT)
        print(f"  {name}: {natural['params'] / 1e6:.2f}M params, {format_macs(natural['macs'])}MACs", file=sys.stderr)
        rows.append(
            f"| `{name}` | {ref.family} | {ref.paper.split(' (')[0]} | {natural['builder']} "
            f"| {natural['params'] / 1e6:.2f} M | {format_published(ref.params_m, ' M')} "
            f"| {int(ref.input_size)} ({ref.dataset}) | {natural['stem']} | {natural['final_map']} "
            f"| {format_macs(natural['macs'])} | {format_published(ref.gmacs, ' G')} "
            f"| {format_macs(small['macs'])} ({small['stem']}, {small['final_map']}) "
            f"| {format_published(ref.top1_err)} |"
        )
    return rows


def stride_section() -> list[str]:
    families = sorted(AUTO_SMALL_INPUT_STEM)
    rows = ["| model | stem | overall stride | final map at 32 px | MACs at 32 px |", "|---|---|---:|---:|---:|"]
    for name in STRIDE_MODELS:
        for stem in ("cifar16", "cifar"):
            model = create_model(name, num_classes=10, input_size=SMALL_INPUT, stem=stem)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stats = profile_complexity(model, (3, SMALL_INPUT, SMALL_INPUT))
            side = stats["final_feature_map"][0]
            auto = " (auto)" if AUTO_SMALL_INPUT_STEM.get(model.archbench_info["family"]) == stem else ""
            rows.append(f"| `{name}` | `{stem}`{auto} | {SMALL_INPUT // side} | {format_map(stats['final_feature_map'])} "
                        f"| {format_macs(stats['macs'])} |")
    evidence = [f"- {line.replace('STRIDE_SPEEDS', STRIDE_SPEEDS)}" for line in STRIDE_EVIDENCE]
    return [
        "## Small inputs: overall stride",
        "",
        ("The `final map` columns give the last feature map before global pooling, as "
        "`profile_complexity` records it (`complexity.final_feature_map`). With `model.stem=auto` at "
        f"{CIFAR_STEM_MAX_SIZE} px or less, the native CIFAR networks end at 8x8 on a 32 px input (overall "
        "stride 4), the ImageNet topologies with the CIFAR stem (`cifar`: stem stride and stem max-pool removed) "
        f"at 4x4 (stride 8), and {' and '.join(f'`{f}`' for f in families)} at 2x2 (stride 16, `cifar16`). "
        "Those two families offer both: `model.stem=cifar16` un-strides the stem convolution only, "
        "`model.stem=cifar` reaches stride 8 (ShuffleNetV2 drops its stem max-pool, EfficientNetV2 also "
        "un-strides its first strided stage). Parameters are the same at both strides."),
        "",
        *rows,
        "",
        "`auto` uses stride 16 (`cifar16`) for these two families:",
        "",
        *evidence,
        "",
        "The choice is revisited when a comparison over seeds (or at GPU budgets) says otherwise; until then "
        "`model.stem=cifar` gives stride 8 for any run.",
        "",
    ]


def family_sections() -> list[str]:
    lines = []
    for family, module in FAMILY_MODULES.items():
        title, _, body = inspect.getdoc(module).strip().partition("\n\n")
        lines += [f"### `{family}`: {' '.join(title.split()).rstrip('.')}", "", body.strip(), ""]
    return lines


def render(names: list[str]) -> str:
    small = ", ".join(f"`{name}` ({family})" for family, name in SMALL_REPRESENTATIVES.items())
    lines = [
        "# Model zoo",
        "",
        "<!-- generated by scripts/gen_model_docs.py; do not edit by hand -->",
        "",
        (f"Generated by `scripts/gen_model_docs.py` with torch {torch.__version__.split('+')[0]} and timm "
        f"{timm.__version__}. Every model is freshly initialised (no pretrained weights). Parameters and MACs are "
        "measured with `archbench.measure.complexity.profile_complexity` (fvcore; one multiply-add = one MAC, "
        "batch normalization and pooling included) for one image at the model's published input size and "
        "classes (10 for CIFAR-10, 1000 for ImageNet); the last MAC column is the same model with 10 classes "
        f"on a 3x32x32 input, with the stem `model.stem=auto` picks there (inputs of {CIFAR_STEM_MAX_SIZE} px "
        "or less get a small-input stem; `native` marks networks designed for 32 px inputs) and the size of "
        "the last feature map before global pooling."),
        "",
        ("Published numbers and their exact sources (paper and table, or timm's benchmark table) are in "
        "`archbench/models/reference.csv`; `tests/test_models.py` checks every model against them: parameter "
        "counts within 2%, or within half a unit of the last printed digit where the paper rounds harder "
        "(DenseNet-BC-100-12 is printed as 0.8 M, ShuffleNetV2 0.5x as 1.4 M), and MACs within 1% of timm's "
        "published GMACs (ShuffleNetV2: convolution and classifier MACs within 2% of the paper's FLOPs, "
        "which leave out batch normalization)."),
        "",
        f"Small representatives for CPU-scale studies (20-150 M MACs at 32x32): {small}.",
        "",
        "## Models",
        "",
        *model_rows(names),
        "",
        *stride_section(),
        "## Families",
        "",
        *family_sections(),
        "## Any timm model",
        "",
        ("`model=timm model.name=<timm name>` builds `create_model(\"timm/<name>\")`: the timm model freshly "
        "initialised, with the same CIFAR stem surgery (a first convolution larger than 3x3 or patchifying "
        "becomes 3x3 stride 1, a stride-2 3x3 first convolution becomes stride 1, the stem max-pool goes). "
        "`model.archbench_info` keeps the timm name, the timm arguments and the list of stem changes."),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(REPO / "docs/models.md"), help="file to write, or - for stdout")
    parser.add_argument("--models", nargs="*", default=None, help="only these models (default: all registered)")
    args = parser.parse_args(argv)
    names = args.models or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; see archbench.models.list_models()")
    # reference.csv lists the families in order, each from small to large.
    names = [name for name in load_reference().model if name in names]
    text = render(names)
    if args.output == "-":
        print(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
