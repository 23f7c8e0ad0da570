"""Equal-effort tuning, analysed: which studies are tuning trials or tuned reruns, the expected best
after n trials, each tuned study's shared-recipe counterpart, and the gain from tuning per model."""
from __future__ import annotations

import pandas as pd

from archbench.base.numerics import precision_label, torch_major_minor
from archbench.stats import expected_max_curve, holm, welch_p_value

from .comparisons import rank
from .frames import GROUP_KEYS, _values

def study_kind(runs: pd.DataFrame) -> str:
    """'tuning' (trials for selection), 'tuned' (reruns of selected trials) or 'plain'."""
    if "trial" in runs and runs["trial"].notna().any():
        return "tuning"
    if "tuned_from" in runs and runs["tuned_from"].notna().any():
        return "tuned"
    return "plain"


def expected_best(trials: pd.DataFrame, metric: str = "val_top1") -> pd.DataFrame:
    """Expected best `metric` after n = 1..N trials, per tuning study, data, hardware and model
    (archbench.stats.expected_max_curve: Dodge et al. 2019, unbiased estimator of Tang et al. 2020).

    Columns: GROUP_KEYS, `model`, `trials` (n), `expected_best`, `std` (over n-trial subsets),
    `finished` (N).
    """
    columns = GROUP_KEYS + ["model", "trials", "expected_best", "std", "finished"]
    trials = trials[trials["trial"].notna()] if "trial" in trials else trials.iloc[0:0]
    rows = []
    for keys, group in trials.groupby(GROUP_KEYS + ["model"], sort=True, dropna=False):
        values = _values(group, metric)
        if values.empty:
            continue
        counts, mean, spread = expected_max_curve(values.to_numpy())
        rows += [{**dict(zip(GROUP_KEYS + ["model"], keys)), "trials": int(n), "expected_best": float(m),
                  "std": float(s), "finished": len(values)} for n, m, s in zip(counts, mean, spread)]
    return pd.DataFrame(rows, columns=columns)


COUNTERPART_COLUMNS = ["tuned_study", "shared_study", "data", "hardware", "shared_hardware"]


def shared_counterparts(runs: pd.DataFrame) -> pd.DataFrame:
    """The shared-recipe study of each tuned study: same data, training-set size and budget, the same set
    of models, one setting per model, and no tuning (no `trial`, no `tuned_from`). A study that also
    changes anything else is not recognised: the ranking is compared only between studies that differ in
    the recipe's tuned values alone. `shared_hardware` is the counterpart's machine: the tuned study's own
    where the shared study ran there, else another whose runs trained every model in the same precision,
    layout and torch version (at those, another machine changes a run only through kernel rounding, as
    another seed would: see archbench.results.pooling), and the report names both machines.
    """
    if runs.empty or "tuned_from" not in runs:
        return pd.DataFrame(columns=COUNTERPART_COLUMNS)
    train = runs[runs.task == "train"]
    profiles = {}
    for (study, data, hardware), group in train.groupby(GROUP_KEYS, sort=True):
        profiles[(study, data, hardware)] = (study_kind(group), _comparable(group), _numerics(group))
    rows = []
    for (study, data, hardware), (kind, profile, numerics) in profiles.items():
        if kind != "tuned" or profile is None:
            continue
        plain = [(other, other_hardware, other_numerics)
                 for (other, other_data, other_hardware), (other_kind, other_profile, other_numerics)
                 in profiles.items() if other_kind == "plain" and other_data == data and other_profile == profile]
        for shared_study in sorted({other for other, _, _ in plain}):
            machines = [hw for other, hw, _ in plain if other == shared_study and hw == hardware] or \
                [hw for other, hw, alike in plain if other == shared_study and alike == numerics]
            rows += [{"tuned_study": study, "shared_study": shared_study, "data": data, "hardware": hardware,
                      "shared_hardware": machine} for machine in machines]
    return pd.DataFrame(rows, columns=COUNTERPART_COLUMNS)


def _comparable(group: pd.DataFrame):
    """What two studies must share to compare rankings; None when a model has several settings."""
    if group.groupby("model")["variant"].nunique().max() > 1:
        return None
    return (frozenset(group.model), frozenset(group.budget.dropna()), frozenset(group.train_size.dropna()))


def _numerics(group: pd.DataFrame) -> frozenset:
    """Each model's resolved precision, layout and torch version: what two machines must share for their
    runs' accuracy to compare as if trained on one."""
    # Read as settings.numerics_identity reads them.
    readers = {"amp": precision_label, "channels_last": str, "torch": torch_major_minor}
    settings = group[["model"]].assign(**{column: group[column].map(read) for column, read in readers.items()
                                          if column in group})
    return frozenset(settings.drop_duplicates().itertuples(index=False, name=None))


TUNING_GAIN_COLUMNS = ["model", "family", "shared_rank", "shared_mean", "shared_n", "tuned_rank", "tuned_mean",
                       "tuned_n", "gain", "gain_p_holm", "shared_lr", "tuned_lr", "shared_weight_decay",
                       "tuned_weight_decay", "selected_trial"]


def tuning_gain(shared: pd.DataFrame, tuned: pd.DataFrame, metric: str = "test_top1") -> pd.DataFrame:
    """The two rankings side by side: per model, rank and mean `metric` under the shared recipe and
    after tuning, the `gain` (tuned - shared, points), and its Holm-adjusted Welch p over models.

    `shared` and `tuned` are the runs of one comparison each (one study, data and hardware).
    """
    rows = []
    ranks = {name: rank(frame, metric).set_index("model") for name, frame in (("shared", shared), ("tuned", tuned))}
    for model in sorted(set(ranks["shared"].index) & set(ranks["tuned"].index)):
        values = {name: _values(frame[frame.model == model], metric) for name, frame in
                  (("shared", shared), ("tuned", tuned))}
        first = {name: frame[frame.model == model].iloc[0] for name, frame in (("shared", shared), ("tuned", tuned))}
        rows.append({
            "model": model, "family": first["tuned"].get("family"),
            **{f"{name}_{column}": ranks[name].loc[model, source] for name in ("shared", "tuned")
               for column, source in (("rank", "rank"), ("mean", "mean"), ("n", "n"))},
            "gain": float(values["tuned"].mean() - values["shared"].mean()),
            "gain_p": welch_p_value(values["tuned"], values["shared"]),
            **{f"{name}_{column}": first[name].get(column) for name in ("shared", "tuned")
               for column in ("lr", "weight_decay")},
            "selected_trial": first["tuned"].get("selected_trial"),
        })
    if not rows:
        return pd.DataFrame(columns=TUNING_GAIN_COLUMNS)
    table = pd.DataFrame(rows)
    table["gain_p_holm"] = holm(table.pop("gain_p"))
    return table.sort_values(["tuned_rank", "model"]).reset_index(drop=True)[TUNING_GAIN_COLUMNS]
