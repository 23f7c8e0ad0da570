"""How to read this report: what each number, mark and verdict means, stated once."""
from __future__ import annotations

from archbench import results

from ..document import BulletList, Caution, Heading, Paragraph


def section(context) -> list:
    blocks = [
        Heading("How to read this report", 2),
        BulletList([
            "Accuracies are percentages. 'mean ± std' is over seeds (sample standard "
            "deviation); '95% CI' is the Student-t half-width of the mean. One seed has an "
            "unknown spread, shown as '—', and no error bar in the figures.",
            "Pairwise tests: where every run of both models saved its per-image test outcomes, a paired t "
            "test over seeds and test images (the seed spread of each model plus the paired per-image "
            "difference, Student t with Welch-Satterthwaite degrees of freedom, so 2-3 seeds get the 1-4 "
            "degrees of freedom they have; its error rate is checked by simulation at 2, 3 and 5 seeds); "
            "otherwise (runs made before outcomes were saved; the 'Test' column says which) Welch t-tests "
            "over seeds with the independent test-set floor below. Because a study tests many pairs at "
            "once, every verdict uses the Holm-adjusted p-value (over all pairs of the same "
            f"comparison), not the raw one: 'separated' means Holm p < {results.SIGNIFICANCE_LEVEL}; 'not "
            "separated by these seeds' says only that: each study states, median over its pairs, the true "
            "gap its seeds separate with 80% probability, and the seeds per model that would separate a "
            "planning gap of 1, 2 or 5 points. Both p-values are shown.",
            "Rank orders models by mean test top-1: a worse mean never gets a better rank. "
            "'With the best' says whether the seeds can separate a model from the one with "
            "the highest mean (Holm-adjusted); a model with one seed cannot be separated from "
            "anything.",
            "P(better > worse) is the share of seed pairs (one run of each model) in which the "
            "better model scores higher, ties counting half (Bouthillier et al. 2021), with a "
            "95% percentile bootstrap interval. With 2-3 seeds the interval is coarse and "
            "collapses to a point when the seeds do not overlap; it understates the "
            "uncertainty then.",
            "Test-set SE is the binomial standard error of an accuracy measured on n test "
            "images; more seeds do not shrink it, since every seed is scored on the same "
            "images. Without per-image outcomes, a gap smaller than the noise floor (1.96 × the "
            "standard error of the difference, the two models' errors taken as independent, which "
            "overstates it for similar models) is called test-set noise whatever the seeds say.",
            "Rank intervals and 'first in' come from a bootstrap whose seed part is parametric (each mean "
            "drawn as mean + s/√n × Student t with n − 1 degrees of freedom, as in the Welch test), with "
            "the test images drawn once for all models where per-image outcomes were saved; two seeds give "
            "very wide intervals. The separable gap at 80% power is the noncentral t's, with the test's "
            "degrees of freedom, and 'no number of seeds' means the gap is below what even unlimited seeds "
            "could separate at Holm's strictest threshold, given the test-set error. A ranking 'holds' "
            "under another scoring when the 95% bootstrap interval of Kendall tau lies at or above 0.6 (at "
            "most 1 pair in 5 swapped), 'changes' when it lies below, and is 'inconclusive' otherwise, or "
            "when the share of resamples below 0.6 is within Monte Carlo error of 2.5%; both scorings are "
            "resampled by one method.",
            "Published numbers appear only beside runs that repeated the paper's experiment: "
            "its recipe unchanged, its full budget and the full training set with no "
            "validation hold-out. Where a model's paper reports the same dataset but its runs are not "
            "that experiment, the study lists why its published numbers are left out; other studies "
            "show none.",
            "MACs are multiply-accumulates counted by fvcore (which calls them 'flops'). FLOPs "
            "are forward floating-point operations from torch's FlopCounterMode, about 2 × MACs.",
            "Speed, time, memory and energy are never averaged across machines: each comparison names "
            "its machine, and latency and throughput columns name their device. Accuracy pools across "
            "machines only at one numerics identity (the same settings, resolved precision and layout, "
            "torch version and numerics version of the code, whatever the CPU, threads or commit); such "
            "a comparison lists its machines with their seeds and commits, shows one machine's speed, "
            "and prints its machine-effect check, splitting a machine whose effect on test top-1 is "
            "beyond noise. Records made before the numerics identity stay one comparison per machine. "
            "Runs of one model "
            "with different settings are separate rows, never averaged as seeds; the one "
            "exception is settings that differ only in data.order_seed (data order and "
            "augmentation draws), whose runs are pooled with the seeds and split again under "
            "'Sources of variance'. Runs with the same settings from different commits are pooled as "
            "seeds; each study lists the models whose seeds span more than one commit.",
            "† after a model's name: at least one of its runs was made from a working tree with "
            "uncommitted changes (env.git_dirty), so it cannot be rebuilt from its commit; the "
            "sentence under the table says how many.",
            "Pareto (MACs): no other model is both cheaper in MACs and more accurate. MFU is "
            "achieved training FLOP/s as a share of the device's peak. Training time is the "
            "training loop's wall time, without building, profiling or measuring latency.",
            "‡ after a latency, throughput or MFU figure: it was measured under load (another job on "
            "the cores, checked from the 1-minute load average; records from before that check are "
            "judged on the load they recorded) or, for MFU, exceeds 100% against a peak measured too "
            "low. It is shown greyed, and no speed finding is drawn from it; `task=measure` on a quiet "
            "machine measures it again.",
            "Click a column header in index.html to sort the table by it.",
        ]),
    ]
    if context.include_synthetic:
        blocks.append(Caution("include_synthetic=true: runs on synthetic data are included. "
                              "Their accuracies measure nothing about the architectures."))
    if context.reference_note:
        blocks.append(Paragraph(context.reference_note))
    return blocks

