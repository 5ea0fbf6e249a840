"""The doctor at scale and on odd inputs: flat pictures are not near copies of each other, the
report stays about one screen (`--json` keeps everything), a FIFO named like an image is called
what it is, a caption that is not UTF-8 is not also "missing", and caption findings name files."""

from __future__ import annotations

import json
import os

from PIL import Image

from engine.dataset.doctor import format_report
from tests.doctor_support import codes, concept, doctor, only
from tui_lora.cli import main


def _flat(folder, count, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(start, start + count):
        colour = ((index * 37) % 256, (index * 91 // 7) % 256, (index * 13 // 3 + index // 256 * 50) % 256)
        Image.new("RGB", (16, 16), colour).save(folder / f"{index:04d}.png")
        (folder / f"{index:04d}.txt").write_text(f"flat colour {index}")


def test_distinct_flat_colours_are_not_near_copies_but_one_colour_twice_is(tmp_path):
    root = tmp_path / "images"
    _flat(root / "2_flat", 300)
    assert "duplicates.near" not in codes(doctor(root, max_resolution=(16, 16), bucket_min=16, bucket_step=16))
    # the same flat colour at another size (so not the same bytes): a near copy by its colours
    colour = (250, 3, 200)
    assert colour not in {Image.open(p).getpixel((0, 0)) for p in (root / "2_flat").glob("*.png")}
    Image.new("RGB", (32, 32), colour).save(root / "2_flat" / "a.png")
    Image.new("RGB", (16, 16), colour).save(root / "2_flat" / "b.png")
    near = only(doctor(root, max_resolution=(16, 16), bucket_min=16, bucket_step=16), "duplicates.near")
    assert {p.name for p in map(_path, near.paths)} == {"a.png", "b.png"}


def _path(value):
    from pathlib import Path

    return Path(value)


def test_the_report_stays_about_one_screen_whatever_the_size_and_json_keeps_all(tmp_path, capsys):
    root = tmp_path / "images"
    for index in range(40):  # 40 folders, each with missing captions, an empty caption and an orphan
        folder = concept(root, f"{index + 1}_thing{index}", 4, seed=index)
        (folder / "img0.txt").write_text("")
        (folder / "stray.txt").write_text("a caption without its image")
    report = doctor(root)
    text = format_report(report, 80)
    assert len(text.splitlines()) <= 60, text
    assert "more" in text and "(see --json)" in text
    assert main(["doctor", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["findings"]) >= len(report.findings) >= 120  # every finding, with every file
    assert main(["doctor", str(root)]) == 0
    assert len(capsys.readouterr().out.splitlines()) <= 60


def test_a_fifo_named_like_an_image_is_called_what_it_is(tmp_path):
    root = tmp_path / "images"
    folder = concept(root, "1_thing", 1)
    os.mkfifo(folder / "x.png")
    report = doctor(root)
    found = only(report, "images.not_a_file")
    assert "x.png (a named pipe (FIFO))" in found.message and "symlink" not in found.message
    assert "images.broken_link" not in codes(report)


def test_a_caption_that_is_not_utf8_is_not_also_missing(tmp_path):
    root = tmp_path / "images"
    folder = concept(root, "1_thing", 1)
    (folder / "img0.txt").write_bytes(b"caf\xe9 au lait")
    report = doctor(root)
    assert "captions.unreadable" in codes(report) and "captions.missing" not in codes(report)


def test_caption_findings_name_the_files(tmp_path):
    root = tmp_path / "images"
    folder = concept(root, "1_sks dog", 7, captions="a dog on grass")
    for index in (0, 1, 2, 3, 4):
        (folder / f"img{index}.txt").unlink()
    (folder / "img5.txt").write_text("")
    report = doctor(root)
    missing = only(report, "captions.missing").message
    assert "img0.png, img1.png, img2.png … 2 more" in missing
    assert "img5.txt" in only(report, "captions.empty").message
    assert "img6.png" in only(report, "captions.trigger_missing").message
