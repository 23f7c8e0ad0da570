"""Report figures, each saved as PNG and SVG. One call draws one comparison (study, data, hardware).

Every function returns a matplotlib Figure, or None when the comparison has nothing to plot
(e.g. no latency was measured); the caller saves it. Colours follow the model family, the same
in every figure, so families can be followed across plots.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .labels import count_text  # noqa: E402

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


ONE_SEED_NOTE = "hollow: 1 seed (spread unknown)"


def _scatter_by_family(axes, points, x, y, colors, yerr=None):
    """One colour per family; error bars only where the spread was measured (two or more
    seeds). A one-seed point is drawn hollow and bare: its spread is unknown, not zero."""
    measured = points[yerr].notna() if yerr is not None else pd.Series(True, index=points.index)
    for family, members in points.groupby(points["family"].astype(str), sort=True):
        with_spread, bare = members[measured[members.index]], members[~measured[members.index]]
        if len(with_spread):
            axes.errorbar(with_spread[x], with_spread[y],
                          yerr=None if yerr is None else with_spread[yerr],
                          fmt="o", capsize=3, color=colors[family], label=family)
        if len(bare):
            axes.plot(bare[x], bare[y], "o", markerfacecolor="none", color=colors[family],
                      label=None if len(with_spread) else family)
    if yerr is not None and not measured.all():
        axes.plot([], [], "o", markerfacecolor="none", color="0.4", label=ONE_SEED_NOTE)
    for row in points.itertuples(index=False):
        axes.annotate(row.label, (getattr(row, x), getattr(row, y)), fontsize=7,
                      xytext=(4, 3), textcoords="offset points")


def _log_if_wide(axes, values, axis="x"):
    """Log scale when values span more than a decade, so small models are not squashed."""
    values = [value for value in values if value > 0]
    if values and max(values) / min(values) > 10:
        (axes.set_xscale if axis == "x" else axes.set_yscale)("log")
        target = axes.xaxis if axis == "x" else axes.yaxis
        # 1-2-5 steps give several labelled ticks on any span over a decade; plain numbers
        # (0.2, 1, 50) read faster than powers of ten.
        target.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        target.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda value, _position: f"{value:g}"))
        target.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _new_axes(title: str, size=(6.4, 4.4)):
    figure, axes = plt.subplots(figsize=size, layout="constrained")
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
        _pareto_staircase(axes, points, x, on_front)
    _log_if_wide(axes, points[x])
    axes.set_xlabel(x_label)
    axes.set_ylabel(ACCURACY_LABEL)
    axes.legend(fontsize=7)
    return figure


def _pareto_staircase(axes, points, x, on_front):
    """The front as a staircase carried on to the costliest model, so that a front of one
    point (one model dominating all) still shows as a line, with circled members."""
    front = points[on_front.reindex(points.index, fill_value=False)].sort_values(x)
    if front.empty:
        return
    xs = list(front[x]) + [points[x].max()]
    ys = list(front["test_top1_mean"]) + [front["test_top1_mean"].iloc[-1]]
    axes.plot(xs, ys, drawstyle="steps-post", color="0.3", linestyle="--", linewidth=1)
    circled = {"marker": "o", "markersize": 13, "markerfacecolor": "none", "color": "0.3"}
    axes.plot(front[x], front["test_top1_mean"], linestyle="none", **circled)
    axes.plot([], [], linestyle="--", linewidth=1, label="Pareto front", **circled)


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
    """Validation top-1 per model, averaged over seeds at each epoch; `families` maps each
    model's label to its family."""
    if curves.empty or x not in curves or "val_top1" not in curves:
        return None
    curves = _plottable(curves, x, "val_top1")
    if curves.empty:
        return None
    figure, axes = _new_axes(title)
    styles = ["-", "--", ":", "-."]
    seen_per_family: dict = {}
    for label, runs in curves.groupby("label", sort=True):
        family = str(families.get(label))
        style = styles[seen_per_family.get(family, 0) % len(styles)]
        seen_per_family[family] = seen_per_family.get(family, 0) + 1
        per_epoch = runs.assign(position=runs[x]).groupby("epoch")[["position", "val_top1"]]
        mean = per_epoch.mean().sort_values("position")
        axes.plot(mean["position"], mean["val_top1"], style, marker=".", color=colors.get(family),
                  label=f"{label} ({count_text(runs['seed'].nunique(), 'seed')})")
    if x == "epoch":
        axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set_xlabel(x_label)
    axes.set_ylabel("Validation top-1 accuracy (%)")
    axes.legend(fontsize=7)
    return figure


def family_dots(summary: pd.DataFrame, title: str, colors: dict):
    """Dot plot of mean test top-1 per model, grouped and coloured by family, with a ± std bar
    where two or more seeds measured one. Dots, not bars: a bar's length would have to start
    at zero to be honest, and then the gaps the study is about would vanish."""
    points = _plottable(summary, "test_top1_mean")
    if points.empty:
        return None
    points = points.sort_values(["family", "test_top1_mean"], ascending=[True, True])
    figure, axes = _new_axes(title, size=(6.4, 1.6 + 0.32 * len(points)))
    positions = list(range(len(points)))
    points = points.assign(position=positions)
    for family, members in points.groupby(points["family"].astype(str), sort=True):
        spread = members[members["test_top1_std"].notna()]
        bare = members[members["test_top1_std"].isna()]
        if len(spread):
            axes.errorbar(spread["test_top1_mean"], spread["position"],
                          xerr=spread["test_top1_std"], fmt="o", capsize=3,
                          color=colors[family], label=family)
        if len(bare):
            axes.plot(bare["test_top1_mean"], bare["position"], "o", markerfacecolor="none",
                      color=colors[family], label=None if len(spread) else family)
    if points["test_top1_std"].isna().any():
        axes.plot([], [], "o", markerfacecolor="none", color="0.4", label=ONE_SEED_NOTE)
    labels = [f"{row.label} ({count_text(row.test_top1_n, 'seed')})"
              for row in points.itertuples(index=False)]
    axes.set_yticks(positions, labels, fontsize=7)
    axes.set_ylim(-0.7, len(points) - 0.3)
    axes.set_xlabel(ACCURACY_LABEL + ", mean ± std over seeds")
    # Beside the axes: inside, it would cover the dots of a short plot.
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
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
