"""The doctor's image checks: files training refuses (blocking) and files it changes (advice)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.doctor_support import concept, doctor, only, picture


def _folder(tmp_path):
    root = tmp_path / "img"
    return root, concept(root, "10_cat")


def test_zero_byte_truncated_and_fake_images_block_training_with_advice(tmp_path):
    root, folder = _folder(tmp_path)
    (folder / "empty.png").write_bytes(b"")
    data = io.BytesIO()
    picture(2).save(data, "PNG")
    (folder / "cut.png").write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    (folder / "notes.jpg").write_text("not a picture")
    report = doctor(root)
    assert report.blocks_training
    zero = only(report, "images.zero_byte")
    assert zero.severity == "error" and "empty.png" in zero.message and "copy them again" in zero.advice
    cut = only(report, "images.truncated")
    assert cut.paths == (str(folder / "cut.png"),) and "download them again" in cut.advice
    assert only(report, "images.not_an_image").paths == (str(folder / "notes.jpg"),)


def test_png_named_jpg_is_a_warning_not_a_blocker(tmp_path):
    root, folder = _folder(tmp_path)
    picture(3).save(folder / "photo.jpg", "PNG")
    report = doctor(root)
    item = only(report, "images.wrong_extension")
    assert item.severity == "warning" and "photo.jpg is PNG" in item.message
    assert "real extension" in item.advice and not report.blocks_training


def test_animated_cmyk_palette_and_deep_images_say_what_training_does(tmp_path):
    root, folder = _folder(tmp_path)
    frames = [picture(4), picture(5)]
    frames[0].save(folder / "anim.png", save_all=True, append_images=frames[1:])
    picture(6).convert("CMYK").save(folder / "print.jpg")
    picture(7).convert("P").save(folder / "palette.png")
    grey16 = (np.asarray(picture(8).convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(grey16).save(folder / "deep.png")
    report = doctor(root)
    assert "only the first frame is trained" in only(report, "images.animated").message
    cmyk = only(report, "images.cmyk")
    assert "colours may shift" in cmyk.message and "sRGB" in cmyk.advice
    assert "expanded to full colour" in only(report, "images.palette").message
    deep = only(report, "images.high_bit_depth")
    assert deep.severity == "info" and "reduces them to 8 bits" in deep.message
    assert only(report, "images.greyscale").paths == (str(folder / "deep.png"),)
    assert not report.blocks_training


def test_transparent_areas_warn_about_white_backgrounds_and_opaque_alpha_is_a_note(tmp_path):
    root, folder = _folder(tmp_path)
    cutout = picture(9).convert("RGBA")
    alpha = Image.new("L", cutout.size, 255)
    alpha.paste(0, (0, 0, 48, 96))
    cutout.putalpha(alpha)
    cutout.save(folder / "cutout.png")
    picture(10).convert("RGBA").save(folder / "opaque.png")
    report = doctor(root)
    item = only(report, "images.transparency")
    assert item.paths == (str(folder / "cutout.png"),) and "white backgrounds" in item.message
    assert only(report, "images.alpha_unused").paths == (str(folder / "opaque.png"),)


def test_exif_rotation_is_noted_with_how_to_bake_it_in(tmp_path):
    root, folder = _folder(tmp_path)
    exif = Image.Exif()
    exif[0x0112] = 6
    picture(11, (96, 64)).save(folder / "sideways.jpg", exif=exif)
    item = only(doctor(root), "images.exif_rotation")
    assert "sideways.jpg" in item.message and "rotation applied" in item.advice


def test_small_images_report_how_much_they_are_upscaled(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_cat", size=(64, 64))
    picture(12, (32, 32)).save(root / "10_cat" / "tiny.png")
    item = only(doctor(root), "images.upscaled")
    assert item.severity == "warning" and "upscaled up to 2.0×" in item.message
    assert "32×32 → 64×64" in item.message and "buckets.no_upscale" in item.advice


def test_extreme_aspect_ratio_reports_how_much_is_cropped(tmp_path):
    root, folder = _folder(tmp_path)
    picture(13, (600, 60)).save(folder / "pano.png")
    item = only(doctor(root), "images.extreme_aspect")
    assert item.paths == (str(folder / "pano.png"),)
    assert "% of the image is cropped away" in item.message and "crop them yourself" in item.advice


def test_very_different_sizes_in_one_concept_are_noted(tmp_path):
    root, folder = _folder(tmp_path)
    picture(14, (512, 512)).save(folder / "big.png")
    item = only(doctor(root), "images.mixed_sizes")
    assert "96 px" in item.message and "512 px" in item.message


def test_gif_in_a_concept_folder_is_reported_as_not_read(tmp_path):
    root, folder = _folder(tmp_path)
    picture(15).save(folder / "clip.gif")
    item = only(doctor(root), "images.unsupported_format")
    assert ".gif" in item.message and "convert them" in item.advice
