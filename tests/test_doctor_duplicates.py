"""The doctor's duplicate checks: exact and near copies, across concepts, with their weight."""

from __future__ import annotations

import io
import shutil

from PIL import Image

from engine.dataset.doctor.duplicates import NEAR_DISTANCE
from tests.doctor_support import codes, concept, doctor, only


def test_exact_copy_across_concepts_reports_its_weight_after_repeats(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_cat", 3)
    concept(root, "5_dog", 2, seed=1)
    shutil.copy(root / "10_cat" / "img0.png", root / "5_dog" / "copy.png")
    item = only(doctor(root), "duplicates.exact")
    assert "10_cat/img0.png" in item.message and "5_dog/copy.png" in item.message
    assert "together drawn 15 times per epoch (10 + 5)" in item.message  # of 30 + 15 draws
    assert "33% of each epoch" in item.message
    assert "across concept folders" in item.advice


def _recompressed(image: Image.Image, quality: int) -> Image.Image:
    data = io.BytesIO()
    image.save(data, "JPEG", quality=quality)
    return Image.open(io.BytesIO(data.getvalue()))


def test_resized_recompressed_and_slightly_cropped_copies_are_near_duplicates(tmp_path):
    root = tmp_path / "img"
    folder = concept(root, "10_cat", 4, size=(128, 128))
    original = Image.open(folder / "img0.png").convert("RGB")
    _recompressed(original.resize((90, 90)), 70).save(folder / "smaller.jpg")
    original.crop((2, 2, 126, 126)).save(folder / "cropped.png")
    item = only(doctor(root), "duplicates.near")
    assert set(item.paths) == {str(folder / n) for n in ("img0.png", "smaller.jpg", "cropped.png")}
    assert "near copies" in item.message and "keep one copy" in item.advice


def test_different_pictures_are_not_near_duplicates(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_cat", 12, size=(128, 128))
    report = doctor(root)
    assert not {"duplicates.near", "duplicates.exact"} & codes(report)
    assert NEAR_DISTANCE < 16


def test_training_image_in_the_regularisation_folder_is_named_as_such(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_cat", 2)
    reg = concept(tmp_path / "reg", "1_cat", 2, seed=9)
    shutil.copy(root / "10_cat" / "img1.png", reg / "same.png")
    item = only(doctor(root, regularization_dir=reg.parent), "duplicates.exact")
    assert "a training image is also in the regularisation set" in item.message
    assert "remove the copy from the regularisation folder" in item.advice


def test_exact_copies_are_not_reported_again_as_near_copies(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_cat", 2)
    shutil.copy(root / "10_cat" / "img0.png", root / "10_cat" / "again.png")
    report = doctor(root)
    assert len(report.by_code("duplicates.exact")) == 1 and not report.by_code("duplicates.near")
