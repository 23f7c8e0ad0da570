"""The report's robustness section says which published corruption benchmark a result is not comparable with
(the one of its dataset, or none) and on how many of the test images it was scored."""
import copy

import pytest

from helpers import fixture_record, write_record
from section_context import section_context
from archbench import results
from archbench.evaluate.corruptions import describe_generated
from archbench.report.context import Analysis
from archbench.report.document import BulletList
from archbench.report.sections import evaluation

OLD_METHOD = ("generated with imagecorruptions-imaug 1.1.5: ImageNet-C parameters applied at 28x28; comparable "
              "between models here, NOT with published CIFAR-10-C results")


@pytest.mark.parametrize("data, label, named", [
    ("cifar10", None, "NOT with published CIFAR-10-C results"),
    ("cifar10_jpg", "CIFAR-10 (JPEG image folder)", "NOT with published CIFAR-10-C results"),
    ("cifar100", None, "NOT with published CIFAR-100-C results"),
    ("fashion_mnist", "Fashion-MNIST", "NOT with any published corruption benchmark (CIFAR-10-C, ImageNet-C)"),
    ("svhn", "SVHN", "NOT with any published corruption benchmark (CIFAR-10-C, ImageNet-C)"),
])
def test_the_corruption_method_names_the_benchmark_of_the_dataset(data, label, named):
    for method in (OLD_METHOD, describe_generated(28)):
        text = evaluation.dataset_method(method, data, label)
        assert text.endswith(named) and text.startswith("generated with imagecorruptions-imaug")
    official = "official .npy files from /data/CIFAR-10-C"
    assert evaluation.dataset_method(official, data, label) == official


def _evaluated_comparison(tmp_path, data, images=1000):
    for model, family in (("resnet20", "resnet_v1"), ("resnet56", "resnet_v1")):
        for seed in range(2):
            record = fixture_record("robust", model, family, seed, test_top1=80.0 + seed)
            record["data"] = data
            record["config"]["data"]["name"] = data
            record["dataset"].update(name=data, test_size=10000)
            record["robustness"] = {
                "source": "generated", "method": OLD_METHOD, "images": images, "subset_seed": 0,
                "corruptions": ["contrast"], "severities": [1], "clean_top1": 80.0 + seed,
                "top1": {"contrast": {"1": 60.0 + seed + (model == "resnet56")}},
                "mean_corruption_top1": 60.0 + seed + (model == "resnet56"), "relative_drop": 25.0}
            write_record(tmp_path, copy.deepcopy(record), "v")
    analysis = Analysis(results.load(tmp_path))
    [comparison] = analysis.comparisons("robust")
    assert comparison.data == data
    return analysis, comparison


def _notes(blocks):
    return " ".join(item for block in blocks if isinstance(block, BulletList) for item in block.items)


def test_a_fashion_mnist_corruption_section_does_not_name_cifar_10_c_and_says_how_many_images(tmp_path):
    analysis, comparison = _evaluated_comparison(tmp_path, "fashion_mnist")
    notes = _notes(evaluation.blocks(section_context(analysis), comparison))
    assert "CIFAR-10-C results" not in notes
    assert "NOT with any published corruption benchmark (CIFAR-10-C, ImageNet-C)." in notes
    assert "scored on 1,000 of the 10,000 test images: a fixed subset" in notes


def test_a_cifar_10_corruption_section_keeps_cifar_10_c_and_a_full_test_set_is_called_all(tmp_path):
    analysis, comparison = _evaluated_comparison(tmp_path, "cifar10", images=10000)
    notes = _notes(evaluation.blocks(section_context(analysis), comparison))
    assert "NOT with published CIFAR-10-C results." in notes
    assert "scored on all 10,000 test images." in notes and "subset" not in notes
