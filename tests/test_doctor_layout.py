"""The doctor's layout checks: images training would skip, and folder-name mistakes."""

from __future__ import annotations

import pytest

from tests.doctor_support import codes, concept, doctor, only, picture


def test_loose_images_are_reported_as_ignored_with_where_to_put_them(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_dog")
    picture(1).save(root / "stray.png")
    item = only(doctor(root), "layout.loose_images")
    assert item.severity == "warning" and "training ignores them" in item.message
    assert "<repeats>_<words>" in item.advice
    assert item.paths == (str(root / "stray.png"),)


@pytest.mark.parametrize("name", ["10 dog", "10-dog", "dog_10", "10dog", "dog 10"])
def test_folder_name_like_a_typo_of_the_pattern_gets_the_fixed_name(tmp_path, name):
    root = tmp_path / "img"
    concept(root, "10_cat")
    concept(root, name, 2, seed=3)
    item = only(doctor(root), "layout.folder_name_typo")
    assert item.severity == "warning" and "2 images are skipped" in item.message
    assert "rename it `10_dog`" in item.advice


def test_folder_without_a_repeat_count_is_skipped_with_an_example_name(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_cat")
    concept(root, "dogs", seed=2)
    item = only(doctor(root), "layout.folder_skipped")
    assert "no repeat count" in item.message and "`10_dogs`" in item.advice


def test_empty_concept_folder_and_zero_repeats_are_reported(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_cat")
    (root / "5_empty").mkdir()
    concept(root, "0_never", seed=4)
    report = doctor(root)
    assert "holds no images" in only(report, "layout.empty_concept").message
    zero = only(report, "layout.zero_repeats")
    assert "never used" in zero.message and "`1_never`" in zero.advice


def test_images_in_nested_folders_are_reported_as_skipped(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_cat")
    concept(root / "10_cat", "extra", 3, seed=5)
    item = only(doctor(root), "layout.nested_folders")
    assert "3 images in sub-folders of `10_cat` are skipped" in item.message
    assert item.paths == (str(root / "10_cat" / "extra"),)
    assert "move them up" in item.advice


def test_regularisation_folder_inside_the_training_folder_is_reported_once(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_cat")
    reg = concept(root / "reg", "1_cat", 2, seed=6)
    report = doctor(root, regularization_dir=reg.parent)
    item = only(report, "layout.reg_inside_train")
    assert "inside the training folder" in item.message and "beside the training folder" in item.advice
    assert "layout.folder_skipped" not in codes(report)  # not advised to rename it as a concept


def test_regularisation_concept_inside_the_training_folder_says_it_is_trained_on(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_cat")
    concept(root, "1_person", 2, seed=7)
    item = only(doctor(root, regularization_dir=root / "1_person"), "layout.reg_inside_train")
    assert "read as a training concept too" in item.message


def test_folder_with_no_concept_folders_blocks_training(tmp_path):
    root = tmp_path / "img"
    concept(root, "dog")
    report = doctor(root)
    item = only(report, "layout.no_images")
    assert item.severity == "error" and report.blocks_training
    assert "<repeats>_<tokens>" in item.advice
