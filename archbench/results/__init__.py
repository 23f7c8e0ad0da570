"""Run records -> pandas tables: one row per run, one row per model, pairwise significance, tuning.

Reads the records that `archbench.record` reads and maps to flat columns (one row per run, units in
the column names). Nothing here imports torch or Hydra, so results can be analysed on any machine with
pandas and scipy. The modules, bottom up: `frames` (keys and labels), `loading` (records -> runs and
what is left out), `comparisons` (tests and ranks within a comparison), `tuning_analysis` (equal-effort
tuning) and `summaries` (per model, variance sources, confounds, across studies); every public name is
importable from `archbench.results` itself. Imported as modules: `tuning` (the equal-effort protocol),
`export` (the runs table as a file), `reproduction` (does NEW reproduce BASE), `ladder`, `pooling` and
`projection`.
"""
from archbench.record import RECORD_FILE, RECORD_FILENAME
from archbench.stats import welch_p_value

from .comparisons import (COMPARE_COLUMNS, PAIRED_TEST, PLANNING_GAP, RANK_COLUMNS, RESAMPLED_SEEDS,
                          RESAMPLED_SEEDS_AND_IMAGES, SIGNIFICANCE_LEVEL, UNPAIRED_TEST, alike_bootstrap_means,
                          bootstrap_means, compare, rank, ranking_shift)
from .frames import ENTRY_KEYS, GROUP_KEYS, MODEL_KEYS, RUN_KEYS, model_label
from .loading import (EXCLUDED_COLUMNS, ORDER_SEED_KEY, Evaluation, evaluation, evaluation_run_columns, history,
                      load, load_with_exclusions, pool_order_seeds, temperature_rejected, test_outcomes,
                      with_evaluation)
from .summaries import (ACROSS_COLUMNS, CONFOUND_SETTINGS, MEAN_SUMMARY_ORDER, PROFILE_COLUMNS, SEED_SUMMARY_ORDER,
                        VARIANCE_COLUMNS, VARIANCE_FACTORS, across_studies, confounds, confounds_text, mean_std_ci95,
                        pareto_front, reliability_curve, summarised, summarize, variance_sources)
from .tuning_analysis import (COUNTERPART_COLUMNS, TUNING_GAIN_COLUMNS, expected_best, shared_counterparts,
                              study_kind, tuning_gain)

__all__ = [
    "ACROSS_COLUMNS", "COMPARE_COLUMNS", "CONFOUND_SETTINGS", "COUNTERPART_COLUMNS", "ENTRY_KEYS", "EXCLUDED_COLUMNS",
    "Evaluation", "GROUP_KEYS", "MEAN_SUMMARY_ORDER", "MODEL_KEYS", "ORDER_SEED_KEY", "PAIRED_TEST",
    "PLANNING_GAP", "PROFILE_COLUMNS", "RANK_COLUMNS", "RECORD_FILE", "RECORD_FILENAME", "RESAMPLED_SEEDS",
    "RESAMPLED_SEEDS_AND_IMAGES", "RUN_KEYS", "SEED_SUMMARY_ORDER", "SIGNIFICANCE_LEVEL", "TUNING_GAIN_COLUMNS",
    "UNPAIRED_TEST", "VARIANCE_COLUMNS", "VARIANCE_FACTORS", "across_studies", "alike_bootstrap_means", "bootstrap_means", "compare",
    "confounds", "confounds_text", "evaluation", "evaluation_run_columns", "expected_best", "history", "load",
    "load_with_exclusions", "mean_std_ci95", "model_label", "pareto_front", "pool_order_seeds", "rank",
    "ranking_shift", "reliability_curve", "shared_counterparts", "study_kind", "summarised", "summarize",
    "temperature_rejected", "test_outcomes", "tuning_gain", "variance_sources", "welch_p_value", "with_evaluation",
]
