"""Report figures, each saved as PNG and SVG. One call draws one comparison (study, data, hardware).

Every function returns a matplotlib Figure, or None when the comparison has nothing to plot
(e.g. no latency was measured); the caller saves it. Colours follow the model family, the same
in every figure, so families can be followed across plots.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.colors
import matplotlib.lines
import matplotlib.text
import matplotlib.ticker
import PIL.Image

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
    place_point_labels(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, metadata=_PNG_METADATA)
    # Plots use few colours: a 256-colour palette keeps them sharp at about a third of the bytes, so
    # index.html (figures inlined) stays small as studies are added. Deterministic: same input, same bytes.
    buffer.seek(0)
    with PIL.Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256).save(figures_dir / f"{stem}.png", optimize=True)
    figure.savefig(figures_dir / f"{stem}.svg", metadata=_SVG_METADATA)
    plt.close(figure)
    return f"{figures_dir.name}/{stem}.png", f"{figures_dir.name}/{stem}.svg"


def _plottable(summary: pd.DataFrame, *columns) -> pd.DataFrame:
    frame = summary.copy()
    for column in columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.dropna(subset=list(columns))


ONE_SEED_NOTE = "hollow: 1 seed (spread unknown)"
SPEED_COLUMNS = {"latency_b1_ms", "throughput_img_s"}


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
    speed = {x, y} & SPEED_COLUMNS
    if speed and "latency_under_load" in points and points["latency_under_load"].notna().any():
        # Greyed over the coloured point: a speed taken under load is there for reference only.
        loaded = points[points["latency_under_load"].notna()]
        axes.plot(loaded[x], loaded[y], "o", color="0.75", markersize=7, zorder=3)
        axes.plot([], [], "o", color="0.75", label="speed measured under load (‡)")
    # Named once the figure is laid out (scales, legend), where no name covers another (`place_point_labels`).
    pending = getattr(axes, "_archbench_labels", [])
    pending += [(getattr(row, x), getattr(row, y), str(row.label)) for row in points.itertuples(index=False)]
    axes._archbench_labels = pending


# ------------------------------------------------------------------------- labels without overprint

# Offsets (points) tried in turn for a point's name: right, left, above, below, then further out.
_OFFSETS = [(dx * k, dy * k) for k in (1, 2, 3) for dx, dy in
            ((5, 2), (5, -9), (-5, 2), (-5, -9), (0, 7), (0, -13), (8, 8), (-8, 8), (8, -14), (-8, -14))]


def text_boxes(figure) -> list:
    """(text, window extent) of every text `figure` actually draws (tick labels out of view are not)."""
    drawn = []
    original = matplotlib.text.Text.draw

    def recording(text, renderer):
        original(text, renderer)
        if text.get_visible() and text.get_text().strip():
            drawn.append(text)

    matplotlib.text.Text.draw = recording
    try:
        figure.canvas.draw()
    finally:
        matplotlib.text.Text.draw = original
    renderer = figure.canvas.get_renderer()
    return [(text, text.get_window_extent(renderer)) for text in drawn]


def overlapping_texts(figure, slack: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of texts of `figure` whose drawn boxes overlap by more than `slack` pixels each way."""
    boxes = [(text, box) for text, box in text_boxes(figure) if box.width > 0 and box.height > 0]
    pairs = []
    for i, (first, a) in enumerate(boxes):
        for second, b in boxes[i + 1:]:
            if min(a.x1, b.x1) - max(a.x0, b.x0) > slack and min(a.y1, b.y1) - max(a.y0, b.y0) > slack:
                pairs.append((first.get_text(), second.get_text()))
    return pairs


def place_point_labels(figure) -> None:
    """Name the points each axes asked for, none over another text, a legend or the axes' edge.

    Each name tries a list of offsets around its point and takes the first free one. When a name
    finds no free place, every point of that axes is numbered instead (points within a few pixels
    share one number label) and the numbers are explained in a key beside the axes.
    """
    for axes in figure.axes:
        pending = getattr(axes, "_archbench_labels", None)
        if not pending:
            continue
        axes._archbench_labels = []
        figure.canvas.draw()  # lay out first: scales, legends and tick labels are where they end up
        placed = _place(axes, pending, fontsize=7)
        if placed is not None:
            continue
        _numbered(axes, pending)


def _occupied(figure, axes) -> list:
    renderer = figure.canvas.get_renderer()
    boxes = [box for _, box in text_boxes(figure)]
    for legend in [axes.get_legend(), *figure.legends]:
        if legend is not None:
            boxes.append(legend.get_window_extent(renderer))
    return boxes


def _place(axes, pending, fontsize, names=None):
    """Annotations at free offsets; None (and nothing left drawn) when one does not fit."""
    figure = axes.figure
    renderer = figure.canvas.get_renderer()
    frame = axes.get_window_extent(renderer)
    taken = _occupied(figure, axes)
    made = []
    for index, (x, y, label) in enumerate(pending):
        text = label if names is None else names[index]
        for dx, dy in _OFFSETS:
            note = axes.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                                 ha="left" if dx >= 0 else "right", annotation_clip=False)
            box = note.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                made.append(note)
                break
            note.remove()
        else:
            for note in made:
                note.remove()
            return None
    return made


def _numbered(axes, pending) -> None:
    """Numbers at the points (near neighbours share one label) and a key of names beside the axes."""
    figure = axes.figure
    order = sorted(range(len(pending)), key=lambda i: (pending[i][0], pending[i][1]))
    numbers = {index: n + 1 for n, index in enumerate(order)}
    handles = [matplotlib.lines.Line2D([], [], linestyle="none") for _ in order]
    figure.legend(handles, [f"{numbers[i]}  {pending[i][2]}" for i in order], fontsize=6, loc="outside right lower",
                  handlelength=0, handletextpad=0, frameon=False, title="points", title_fontsize=6)
    figure.canvas.draw()
    transform = axes.transData
    groups: list[list[int]] = []
    for index in order:  # points closer than 9 pixels are named together ("3,4")
        here = transform.transform((pending[index][0], pending[index][1]))
        for group in groups:
            there = transform.transform((pending[group[0]][0], pending[group[0]][1]))
            if abs(here[0] - there[0]) < 9 and abs(here[1] - there[1]) < 9:
                group.append(index)
                break
        else:
            groups.append([index])
    figure.set_layout_engine("none")  # numbers placed in pixels must stay where they were checked
    anchors = [pending[group[0]] for group in groups]
    names = [",".join(str(numbers[i]) for i in group) for group in groups]
    if _place(axes, anchors, fontsize=6, names=names) is None:
        for (x, y, _), name in zip(anchors, names):  # crowded beyond any free place: at least legible order
            axes.annotate(name, (x, y), xytext=(3, 2), textcoords="offset points", fontsize=6)


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


def _family_styles(groups, families: dict):
    """(group, (family, line style)) per model: a family shares a colour, so its models differ in style."""
    styles, seen = ["-", "--", ":", "-."], {}
    for label, members in groups:
        family = str(families.get(label))
        yield (label, members), (family, styles[seen.get(family, 0) % len(styles)])
        seen[family] = seen.get(family, 0) + 1


def validation_curves(curves: pd.DataFrame, x: str, x_label: str, title: str,
                      families: dict, colors: dict):
    """Validation top-1 per model, averaged over seeds at each epoch; `families` maps each
    model's label to its family."""
    if curves.empty or x not in curves or "val_top1" not in curves:
        return None
    curves = _plottable(curves, x, "val_top1")
    if curves.empty or curves.groupby("label").epoch.nunique().max() < 2:
        return None  # a study of one evaluated epoch has points, not curves: the tables already hold them
    figure, axes = _new_axes(title)
    for (label, runs), (family, style) in _family_styles(curves.groupby("label", sort=True), families):
        per_epoch = runs.assign(position=runs[x]).groupby("epoch")[["position", "val_top1"]]
        mean = per_epoch.mean().sort_values("position")
        axes.plot(mean["position"], mean["val_top1"], linestyle=_joined(style, len(mean)), marker=".",
                  color=colors.get(family), label=f"{label} ({count_text(_run_count(runs), 'seed')})")
    if x == "epoch":
        axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set_xlabel(x_label)
    axes.set_ylabel("Validation top-1 accuracy (%)")
    axes.legend(fontsize=7)
    return figure


def _joined(style: str, points: int) -> str:
    """A line through three or more points; two points are two measurements, not a curve, so no line."""
    return style if points >= 3 else "none"


def _run_count(runs: pd.DataFrame) -> int:
    """Runs behind a curve: (seed, order seed) pairs when order seeds were pooled as seeds."""
    if "order_seed" in runs:
        return len(runs[["seed", "order_seed"]].astype(str).drop_duplicates())
    return runs["seed"].nunique()


def family_dots(summary: pd.DataFrame, title: str, colors: dict):
    """Dot plot of mean test top-1 per model, grouped and coloured by family, with a ± std bar
    where two or more seeds measured one. Dots, not bars: a bar's length would have to start
    at zero to be honest, and then the gaps the study is about would vanish."""
    return _accuracy_dots(summary, title, colors, ["family", "test_top1_mean"], [True, True], "test_top1_std",
                          ACCURACY_LABEL + ", mean ± std over seeds")


def headline_accuracy(summary: pd.DataFrame, title: str, colors: dict):
    """Mean test top-1 per model, best on top, with its 95% confidence interval over seeds: the
    headline's one figure. Dots and intervals, not bars (see `family_dots`); names on the axis, so
    no label is drawn over the data."""
    return _accuracy_dots(summary, title, colors, ["test_top1_mean", "label"], [True, False], "test_top1_ci95",
                          ACCURACY_LABEL + ", mean and 95% interval over seeds")


def _accuracy_dots(summary: pd.DataFrame, title: str, colors: dict, order: list, ascending: list,
                   error: str, x_label: str):
    """One row per model (names on the axis), its mean test top-1 as a dot coloured by family, `error` as
    the bar; a model with one seed is an open dot with no bar."""
    points = _plottable(summary, "test_top1_mean")
    if points.empty:
        return None
    points = points.sort_values(order, ascending=ascending)
    figure, axes = _new_axes(title, size=(6.4, 1.6 + 0.32 * len(points)))
    positions = list(range(len(points)))
    points = points.assign(position=positions)
    for family, members in points.groupby(points["family"].astype(str), sort=True):
        spread = members[members[error].notna()]
        bare = members[members[error].isna()]
        if len(spread):
            axes.errorbar(spread["test_top1_mean"], spread["position"], xerr=spread[error], fmt="o", capsize=3,
                          color=colors[family], label=family)
        if len(bare):
            axes.plot(bare["test_top1_mean"], bare["position"], "o", markerfacecolor="none",
                      color=colors[family], label=None if len(spread) else family)
    if points[error].isna().any():
        axes.plot([], [], "o", markerfacecolor="none", color="0.4", label=ONE_SEED_NOTE)
    labels = [f"{row.label} ({count_text(row.test_top1_n, 'seed')})" for row in points.itertuples(index=False)]
    axes.set_yticks(positions, labels, fontsize=7)
    axes.set_ylim(-0.7, len(points) - 0.3)
    axes.set_xlabel(x_label)
    # Beside the axes: inside, it would cover the dots of a short plot.
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure


def speed_vs_macs(summary: pd.DataFrame, y: str, y_label: str, title: str, colors: dict):
    """Profile-only comparisons: a speed measure against MACs."""
    return speed_vs(summary, "macs", "MACs (M, multiply-adds)", y, y_label, title, colors)


def speed_vs(summary: pd.DataFrame, x: str, x_label: str, y: str, y_label: str, title: str,
             colors: dict, scale: float = 1e6):
    """A speed measure against a size measure (`x` divided by `scale`), e.g. latency against
    activations: MACs alone mislead about speed, memory traffic shows in the activations."""
    points = _plottable(summary, x, y)
    if points.empty:
        return None
    points[x] = points[x] / scale
    figure, axes = _new_axes(title)
    _scatter_by_family(axes, points, x, y, colors)
    _log_if_wide(axes, points[x])
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.legend(fontsize=7)
    return figure


# ------------------------------------------------------------------------------------- tuning

def sensitivity(trials: pd.DataFrame, title: str):
    """Validation top-1 against learning rate, one panel per model, weight decay as colour.

    Every model received the same candidates, so the panels differ only in how each architecture
    answers them; the ring marks the trial that was selected (best validation top-1).
    """
    points = _plottable(trials, "lr", "val_top1")
    points = points[points["lr"] > 0]
    if points.empty:
        return None
    models = sorted(points["model"].unique())
    # Two panels a row keep the figure about as wide as the others, so it is not shrunk unreadable.
    columns = min(2, len(models))
    rows = -(-len(models) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(3.0 * columns + 1.0, 2.4 * rows + 0.6),
                                sharex=True, sharey=True, layout="constrained", squeeze=False)
    figure.suptitle(title, fontsize=10)
    decay = pd.to_numeric(points.get("weight_decay"), errors="coerce")
    coloured = decay.notna().all() and (decay > 0).all() and decay.nunique() > 1
    norm = matplotlib.colors.LogNorm(decay.min(), decay.max()) if coloured else None
    for axes, model in zip(grid.flat, models):
        members = points[points["model"] == model]
        drawn = axes.scatter(members["lr"], members["val_top1"], s=22,
                             c=decay[members.index] if coloured else "C0",
                             cmap="viridis" if coloured else None, norm=norm)
        best = members.loc[members["val_top1"].idxmax()]
        axes.plot(best["lr"], best["val_top1"], "o", markersize=11, markerfacecolor="none", color="0.2")
        axes.set_title(model, fontsize=9)
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _p: f"{value:g}"))
        # Labelled minor ticks (3x10^-2, 4x10^-2 ...) overprint each other on a narrow panel.
        axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes.grid(True, alpha=0.3)
    for axes in grid.flat[len(models):]:
        axes.set_visible(False)
    # The lowest panel of each column carries the axis, also above an empty slot of the last row.
    for column in range(columns):
        lowest = grid[(len(models) - 1 - column) // columns, column]
        lowest.xaxis.set_tick_params(labelbottom=True)
        lowest.set_xlabel("Learning rate (log)")
    for axes in grid[:, 0]:
        axes.set_ylabel("Val top-1 (%)")
    if coloured:
        figure.colorbar(drawn, ax=grid, label="Weight decay", shrink=0.8)
    return figure


def expected_best(curves: pd.DataFrame, title: str, families: dict, colors: dict):
    """Expected best validation top-1 against the number of trials, one line per model, the band
    ± one std of the best over random subsets of that size."""
    if curves.empty:
        return None
    figure, axes = _new_axes(title)
    for model, curve in curves.groupby("model", sort=True):
        color = colors.get(str(families.get(model)))
        curve = curve.sort_values("trials")
        axes.plot(curve["trials"], curve["expected_best"], marker=".", color=color, label=model,
                  linestyle=_joined("-", len(curve)))
        if len(curve) >= 3:
            axes.fill_between(curve["trials"], curve["expected_best"] - curve["std"],
                              curve["expected_best"] + curve["std"], color=color, alpha=0.12, linewidth=0)
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set_xlabel("Trials per model")
    axes.set_ylabel("Expected best val top-1 (%)")
    axes.legend(fontsize=7)
    return figure


# ----------------------------------------------------------------- calibration and robustness

def reliability_diagram(curve: pd.DataFrame, title: str, families: dict, colors: dict):
    """Accuracy against confidence per confidence bin, one line per model (seeds pooled); the
    diagonal is perfect calibration, a line below it is over-confident. The panel below counts the
    test images in each bin: a bin of a handful of images says little, however far off it lies."""
    if curve.empty:
        return None
    figure, (axes, counts) = plt.subplots(2, 1, figsize=(6.4, 5.4), sharex=True, layout="constrained",
                                          gridspec_kw={"height_ratios": [3, 1]})
    axes.set_title(title, fontsize=10)
    for panel in (axes, counts):
        panel.grid(True, alpha=0.3)
    axes.plot([0, 100], [0, 100], color="0.5", linestyle="--", linewidth=1, label="perfectly calibrated")
    styles = ["-", "--", ":", "-."]
    seen_per_family: dict = {}
    for label, points in curve.groupby("label", sort=True):
        family = str(families.get(label))
        style = styles[seen_per_family.get(family, 0) % len(styles)]
        seen_per_family[family] = seen_per_family.get(family, 0) + 1
        points = points.sort_values("bin_lower")
        axes.plot(points["confidence"], points["accuracy"], linestyle=_joined(style, len(points)), marker="o",
                  markersize=3, color=colors.get(family), label=label)
        counts.plot(points["confidence"], points["count"], linestyle=_joined(style, len(points)), marker="o",
                    markersize=3, color=colors.get(family))
    axes.set_xlim(0, 100)
    axes.set_ylim(0, 100)
    counts.set_yscale("log")
    counts.set_xlabel("Confidence (%), top-1, 15 bins")
    axes.set_ylabel("Accuracy in the bin (%)")
    counts.set_ylabel("Images in the bin", fontsize=8)
    axes.legend(fontsize=7)
    return figure


def corruption_by_severity(cells: pd.DataFrame, title: str, families: dict, colors: dict):
    """Mean top-1 over the corruptions at each severity (0: the same images, clean), one line
    per model, mean over seeds."""
    if cells.empty:
        return None
    figure, axes = _new_axes(title)
    for (label, members), (family, style) in _family_styles(cells.groupby("label", sort=True), families):
        # Per seed first (mean over corruptions), then over seeds: each seed weighs the same.
        per_seed = members.groupby(["seed", "severity"])["top1"].mean().groupby("severity").mean()
        clean = members.groupby("seed")["clean_top1"].first().mean()
        line = pd.concat([pd.Series({0: clean}), per_seed]).dropna()
        axes.plot(line.index, line.values, linestyle=_joined(style, len(line)), marker="o", color=colors.get(family),
                  label=f"{label} ({count_text(members['seed'].nunique(), 'seed')})")
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set_xlabel("Corruption severity (0 = clean)")
    axes.set_ylabel("Top-1 (%), mean over corruptions")
    axes.legend(fontsize=7)
    return figure


def clean_vs_corrupted(summary: pd.DataFrame, title: str, colors: dict):
    """Mean corruption top-1 against clean top-1 on the same images, one point per model; the
    diagonal is no loss at all."""
    points = _plottable(summary, "corruption_clean_top1_mean", "mean_corruption_top1_mean")
    if points.empty:
        return None
    figure, axes = _new_axes(title)
    _scatter_by_family(axes, points, "corruption_clean_top1_mean", "mean_corruption_top1_mean", colors,
                       yerr="mean_corruption_top1_std")
    low = min(points["mean_corruption_top1_mean"].min(), points["corruption_clean_top1_mean"].min())
    high = max(points["mean_corruption_top1_mean"].max(), points["corruption_clean_top1_mean"].max())
    axes.plot([low, high], [low, high], color="0.5", linestyle="--", linewidth=1, label="no loss")
    axes.set_xlabel("Clean top-1 (%), same test images")
    axes.set_ylabel("Mean corruption top-1 (%)")
    axes.legend(fontsize=7)
    return figure


# ------------------------------------------------------------------------- sources of variance

VARIANCE_PARTS = [("seed", "weight initialisation (seed)", "C0"), ("order", "data order (order_seed)", "C1"),
                  ("residual", "residual (interaction + noise)", "0.7")]


def variance_bars(variance: pd.DataFrame, title: str):
    """One stacked horizontal bar per model: the variance of one run's test top-1 (points²) split
    into weight initialisation, data order and the residual, each part labelled with its share.
    Variances, not stds, are stacked: variances add, stds do not."""
    if variance.empty or "complete" not in variance:
        return None
    done = variance[variance["complete"].astype(bool) & variance["order_share"].notna()].sort_values("label")
    if done.empty:
        return None
    figure, axes = _new_axes(title, size=(6.4, 1.4 + 0.45 * len(done)))
    positions = list(range(len(done)))
    left = pd.Series(0.0, index=done.index)
    shares = []
    for part, name, color in VARIANCE_PARTS:
        widths = done[f"{part}_std"] ** 2
        axes.barh(positions, widths, left=left, color=color, label=name, height=0.6)
        for position, start, width, share in zip(positions, left, widths, done[f"{part}_share"]):
            if share >= 0.08:
                shares.append((axes.text(start + width / 2, position, f"{share:.0%}", ha="center", va="center",
                                         fontsize=7), start, width))
        left = left + widths
    axes.set_yticks(positions, [f"{row.label} ({count_text(row.runs, 'run')})" for row in done.itertuples()],
                    fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("Variance of one run's test top-1 (points²)")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for text, start, width in shares:  # a share wider than its segment would print over its neighbour's
        x0, x1 = axes.transData.transform([(start, 0), (start + width, 0)])[:, 0]
        if text.get_window_extent(renderer).width > abs(x1 - x0) - 2:
            text.remove()
    return figure


def across_studies(aggregate: pd.DataFrame, profile: pd.DataFrame, title: str, colors: dict):
    """Left: each model's interquartile mean of the normalised score (0 chance, 1 the comparison's best
    mean) with its stratified bootstrap interval; right: its performance profile, the share of
    comparisons in which it is within a given distance (points) of the best. None when empty."""
    if aggregate.empty:
        return None
    import numpy as np

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    ordered = aggregate.sort_values("iqm")
    positions = range(len(ordered))
    for position, row in zip(positions, ordered.itertuples(index=False)):
        color = colors.get(str(row.family), "0.3")
        left.errorbar(row.iqm, position, xerr=[[row.iqm - row.iqm_low], [row.iqm_high - row.iqm]], fmt="o",
                      capsize=3, color=color)
    left.set_yticks(list(positions), list(ordered.model), fontsize=8)
    left.set_xlabel("IQM of normalised test top-1 (0 = chance, 1 = best mean)")
    left.axvline(1.0, color="0.7", linewidth=0.8, linestyle=":")
    left.set_title("Aggregate, 95% stratified bootstrap interval", fontsize=9)
    largest = max(float(profile.distance.max()), 1.0)
    grid = np.linspace(0.0, largest * 1.05, 200)
    families = dict(zip(aggregate.model, aggregate.family))
    for model, rows in profile.groupby("model", sort=True):
        distances = rows.distance.to_numpy()
        share = [(distances <= tau).mean() for tau in grid]
        right.step(grid, share, where="post", color=colors.get(str(families.get(model)), "0.3"), label=model)
    right.set_xlabel("Distance from the comparison's best mean (points)")
    right.set_ylabel("Share of comparisons within that distance")
    right.set_ylim(-0.02, 1.05)
    right.set_title("Performance profile", fontsize=9)
    right.legend(fontsize=7, loc="lower right")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure
