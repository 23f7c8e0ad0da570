"""Report figures, each saved as PNG and SVG. One call draws one comparison (study, data, hardware).

Every function returns a matplotlib Figure, or None when the comparison has nothing to plot
(e.g. no latency was measured); the caller saves it. Colours follow the model family, the same
in every figure, so families can be followed across plots.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

# Fixed SVG element ids and no timestamps, so regenerating an unchanged report changes no file.
matplotlib.rcParams["svg.hashsalt"] = "archbench"
_PNG_METADATA = {"Software": None}
_SVG_METADATA = {"Date": None, "Creator": None}

ACCURACY_LABEL = "Test top-1 accuracy (%)"
FAMILY_PALETTE = plt.get_cmap("tab10").colors


def family_colors(families) -> dict:
    names = sorted({str(family) for family in families})
    return {name: FAMILY_PALETTE[index % len(FAMILY_PALETTE)] for index, name in enumerate(names)}


def save(figure, figures_dir: Path, stem: str) -> tuple[str, str]:
    """Write `<stem>.png` and `<stem>.svg`; return their paths relative to the report folder."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    figure.savefig(figures_dir / f"{stem}.png", dpi=120, metadata=_PNG_METADATA)
    figure.savefig(figures_dir / f"{stem}.svg", metadata=_SVG_METADATA)
    plt.close(figure)
    return f"{figures_dir.name}/{stem}.png", f"{figures_dir.name}/{stem}.svg"


def _plottable(summary: pd.DataFrame, *columns) -> pd.DataFrame:
    frame = summary.copy()
    for column in columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.dropna(subset=list(columns))


def _scatter_by_family(axes, points, x, y, colors, yerr=None):
    for family, members in points.groupby(points["family"].astype(str), sort=True):
        axes.errorbar(members[x], members[y],
                      yerr=None if yerr is None else members[yerr].fillna(0.0),
                      fmt="o", capsize=3, color=colors[family], label=family)
    for row in points.itertuples(index=False):
        axes.annotate(row.model, (getattr(row, x), getattr(row, y)), fontsize=7,
                      xytext=(4, 3), textcoords="offset points")


def _log_if_wide(axes, values, axis="x"):
    """Log scale when values span more than a decade, so small models are not squashed."""
    values = [value for value in values if value > 0]
    if values and max(values) / min(values) > 10:
        (axes.set_xscale if axis == "x" else axes.set_yscale)("log")
        # Plain numbers (30, 100, 300) read faster than powers of ten.
        plain = matplotlib.ticker.FuncFormatter(lambda value, _position: f"{value:g}")
        target = axes.xaxis if axis == "x" else axes.yaxis
        target.set_major_formatter(plain)
        target.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _new_axes(title: str):
    figure, axes = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    axes.set_title(title, fontsize=10)
    axes.grid(True, alpha=0.3)
    return figure, axes


def accuracy_vs(summary: pd.DataFrame, x: str, x_label: str, title: str, colors: dict,
                scale: float = 1.0, on_front: pd.Series | None = None):
    """Mean test top-1 (error bars: std over seeds) against a cost; Pareto front drawn if given."""
    points = _plottable(summary, x, "test_top1_mean")
    if points.empty:
        return None
    points[x] = points[x] / scale
    figure, axes = _new_axes(title)
    _scatter_by_family(axes, points, x, "test_top1_mean", colors, yerr="test_top1_std")
    if on_front is not None:
        front = points[on_front.reindex(points.index, fill_value=False)].sort_values(x)
        axes.step(front[x], front["test_top1_mean"], where="post", color="0.3",
                  linestyle="--", linewidth=1, label="Pareto front")
        axes.scatter(front[x], front["test_top1_mean"], s=160, facecolors="none",
                     edgecolors="0.3", linewidths=1)
    _log_if_wide(axes, points[x])
    axes.set_xlabel(x_label)
    axes.set_ylabel(ACCURACY_LABEL)
    axes.legend(fontsize=7)
    return figure


def params_vs_accuracy(summary: pd.DataFrame, title: str, colors: dict):
    points = _plottable(summary, "test_top1_mean", "params")
    if points.empty:
        return None
    points["params"] = points["params"] / 1e6
    figure, axes = _new_axes(title)
    _scatter_by_family(axes, points, "params", "test_top1_mean", colors, yerr="test_top1_std")
    _log_if_wide(axes, points["params"])
    axes.set_xlabel("Parameters (M)")
    axes.set_ylabel(ACCURACY_LABEL)
    axes.legend(fontsize=7)
    return figure


def validation_curves(curves: pd.DataFrame, x: str, x_label: str, title: str,
                      families: dict, colors: dict):
    """Validation top-1 per model, averaged over seeds at each epoch."""
    if curves.empty or x not in curves or "val_top1" not in curves:
        return None
    curves = _plottable(curves, x, "val_top1")
    if curves.empty:
        return None
    figure, axes = _new_axes(title)
    styles = ["-", "--", ":", "-."]
    seen_per_family: dict = {}
    for model, runs in curves.groupby("model", sort=True):
        family = str(families.get(model))
        style = styles[seen_per_family.get(family, 0) % len(styles)]
        seen_per_family[family] = seen_per_family.get(family, 0) + 1
        per_epoch = runs.assign(position=runs[x]).groupby("epoch")[["position", "val_top1"]]
        mean = per_epoch.mean().sort_values("position")
        axes.plot(mean["position"], mean["val_top1"], style, marker=".", color=colors.get(family),
                  label=f"{model} ({runs['seed'].nunique()} seeds)")
    axes.set_xlabel(x_label)
    axes.set_ylabel("Validation top-1 accuracy (%)")
    axes.legend(fontsize=7)
    return figure


def family_bars(summary: pd.DataFrame, title: str, colors: dict):
    """One bar per model, grouped and coloured by family; error bars are std over seeds."""
    points = _plottable(summary, "test_top1_mean")
    if points.empty:
        return None
    points = points.sort_values(["family", "test_top1_mean"], ascending=[True, False])
    figure, axes = _new_axes(title)
    positions = range(len(points))
    axes.bar(positions, points["test_top1_mean"],
             yerr=points["test_top1_std"].fillna(0.0), capsize=4,
             color=[colors[str(family)] for family in points["family"]])
    labels = [f"{row.model}\n(n={row.test_top1_n})" for row in points.itertuples(index=False)]
    axes.set_xticks(list(positions), labels, rotation=30, ha="right", fontsize=7)
    low = (points["test_top1_mean"] - points["test_top1_std"].fillna(0.0)).min()
    high = (points["test_top1_mean"] + points["test_top1_std"].fillna(0.0)).max()
    margin = max(1.0, 0.1 * (high - low))
    # Zoomed in: a 0..100 axis would hide the differences the study is about.
    axes.set_ylim(max(0.0, math.floor(low - margin)), min(100.0, math.ceil(high + margin)))
    axes.set_ylabel(ACCURACY_LABEL + ", mean ± std")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[str(family)])
               for family in points["family"].astype(str).unique()]
    axes.legend(handles, list(points["family"].astype(str).unique()), fontsize=7)
    return figure


def speed_vs_macs(summary: pd.DataFrame, y: str, y_label: str, title: str, colors: dict):
    """Profile-only comparisons: a speed measure against MACs."""
    points = _plottable(summary, "macs", y)
    if points.empty:
        return None
    points["macs"] = points["macs"] / 1e6
    figure, axes = _new_axes(title)
    _scatter_by_family(axes, points, "macs", y, colors)
    _log_if_wide(axes, points["macs"])
    axes.set_xlabel("MACs (M, multiply-adds)")
    axes.set_ylabel(y_label)
    axes.legend(fontsize=7)
    return figure
