"""Splits too small for their classes are said out loud (what the split did), or refused when training cannot work."""
import warnings

import pytest
import torch

from archbench.data import DataError, load_dataset
from archbench.data.split import split_indices

NAMES = [f"c{i}" for i in range(10)]


def labels_of(*sizes):
    return torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(sizes)])


def test_a_class_too_small_for_its_validation_share_is_named_and_trains_only():
    labels = labels_of(20, 20, 1)
    with pytest.warns(UserWarning, match=r"1 class\(es\) have no validation images: 'c2' \(1 image\); they are "
                                         r"trained on but not validated"):
        train, val = split_indices(labels, 6, None, 0, NAMES[:3])
    assert 2 not in labels[val].tolist() and 2 in labels[train].tolist()


def test_a_validation_split_smaller_than_the_classes_says_it_cannot_be_stratified():
    with pytest.warns(UserWarning, match=r"data.val_size=5 is fewer than the 10 classes, so it cannot be "
                                         r"stratified.*5 class\(es\) have no validation images"):
        split_indices(labels_of(*[10] * 10), 5, None, 0, NAMES)


def test_a_class_whose_only_images_went_to_validation_warns_that_it_cannot_be_learned():
    labels = labels_of(3, 3, 3, 1)
    with pytest.warns(UserWarning) as caught:
        train, val = split_indices(labels, 4, None, 0, NAMES[:4])
    messages = " ".join(str(w.message) for w in caught)
    assert labels[val].tolist().count(3) == 1  # the largest-remainder rule rounds c3's share of 0.4 up to 1
    assert "no training images: 'c3' (1 image)" in messages and "cannot learn them" in messages


def test_a_training_split_with_fewer_images_than_classes_is_refused():
    labels = labels_of(*[30] * 10)
    with pytest.raises(DataError, match=r"data.train_size=5 is fewer than the 10 classes.*at least "
                                        r"data.train_size=10"):
        split_indices(labels, 20, 5, 0, NAMES)
    with pytest.raises(DataError, match=r"the training split has 2 images for 3 classes"):
        split_indices(labels_of(2, 2, 2), 4, None, 0, NAMES[:3])


def test_an_ordinary_split_says_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train, val = split_indices(labels_of(*[50] * 10), 100, 200, 0, NAMES)
    assert (len(train), len(val)) == (200, 100)


def test_through_load_dataset_the_issue_case_is_refused():
    with pytest.raises(DataError, match="data.train_size=5 is fewer than the 10 classes"):
        load_dataset("synthetic", synthetic_size=300, image_size=8, train_size=5)
