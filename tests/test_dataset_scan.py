"""Dataset scan: Kohya-compatible counts (repeats, regularisation balancing, bucket-aware steps),
captions, every reported problem, the synthetic dataset, and speed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from engine.dataset.scan import scan_dataset
from engine.dataset.synthetic import make_synthetic_dataset
from engine.problems import ProblemError

SQUARE, WIDE = (8, 8), (10, 6)  # with the default 512 buckets: -> 512x512 and 640x384 (ratio 5:3)


def add_images(folder: Path, sizes: list[tuple[int, int]], prefix: str = "img", captions: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, size in enumerate(sizes):
        Image.new("RGB", size, (200, 40 * (index % 6), 90)).save(folder / f"{prefix}{index:02d}.png")
    for stem, text in (captions or {}).items():
        (folder / f"{stem}.txt").write_text(text, encoding="utf-8")


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """images/10_a: 3 squares, images/5_b: 2 wide -> 40 training draws per epoch."""
    add_images(tmp_path / "images" / "10_a", [SQUARE] * 3)
    add_images(tmp_path / "images" / "5_b", [WIDE] * 2)
    return tmp_path


def fields(summary) -> set[str]:
    return {p.field for p in summary.problems}


# --- counts ----------------------------------------------------------------------------------


def test_steps_with_batch_one_are_the_repeated_image_count(layout: Path) -> None:
    summary = scan_dataset(layout / "images", epochs=2)
    assert summary.errors == []
    assert summary.num_train_images == 40
    assert summary.buckets == {(512, 512): 30, (640, 384): 10}
    assert (summary.batches_per_epoch, summary.steps_per_epoch, summary.total_steps) == (40, 40, 80)


def test_steps_round_up_per_bucket_then_divide_by_accumulation(layout: Path) -> None:
    summary = scan_dataset(layout / "images", batch_size=4, epochs=3, gradient_accumulation_steps=2)
    # ceil(30/4) + ceil(10/4) = 8 + 3 = 11 batches; ceil(11 / 2) = 6 steps; 3 epochs = 18
    assert (summary.batches_per_epoch, summary.steps_per_epoch, summary.total_steps) == (11, 6, 18)


def test_steps_are_shared_between_processes(layout: Path) -> None:
    summary = scan_dataset(layout / "images", batch_size=4, gradient_accumulation_steps=2, num_processes=2)
    assert summary.steps_per_epoch == 3  # ceil(11 / 2 / 2)


def test_without_buckets_every_image_trains_at_the_resolution(layout: Path) -> None:
    summary = scan_dataset(layout / "images", batch_size=4, buckets_enabled=False)
    assert summary.buckets == {(512, 512): 40}
    assert summary.batches_per_epoch == 10
    assert {item.bucket for item in summary.items} == {(512, 512)}


def test_regularisation_is_repeated_round_robin_up_to_the_training_count(layout: Path) -> None:
    add_images(layout / "reg" / "1_r", [SQUARE] * 3)
    summary = scan_dataset(layout / "images", layout / "reg", batch_size=4)
    reg = [i for i in summary.items if i.is_reg]
    # one pass gives 3; then +1 per image in turn until 40: 14, 13, 13
    assert [i.repeats for i in reg] == [14, 13, 13]
    assert (summary.num_reg_images, summary.num_reg_images_used) == (3, 40)
    assert summary.buckets == {(512, 512): 70, (640, 384): 10}
    assert summary.batches_per_epoch == 21  # ceil(70/4) + ceil(10/4)
    assert summary.errors == []


def test_regularisation_balancing_walks_folders_in_name_order(tmp_path: Path) -> None:
    add_images(tmp_path / "images" / "10_a", [SQUARE])
    add_images(tmp_path / "reg" / "1_r1", [SQUARE] * 2)
    add_images(tmp_path / "reg" / "2_r2", [SQUARE])
    summary = scan_dataset(tmp_path / "images", tmp_path / "reg")
    # pass 1: 1 + 1 + 2 = 4; pass 2: 2, 2, 3 -> 7; pass 3: 3, 3, 4 -> 10
    assert [(i.concept, i.repeats) for i in summary.items if i.is_reg] == [("1_r1", 3), ("1_r1", 3), ("2_r2", 4)]


def test_surplus_regularisation_images_are_cut_with_a_warning(tmp_path: Path) -> None:
    add_images(tmp_path / "images" / "1_a", [SQUARE] * 2)
    add_images(tmp_path / "reg" / "1_r", [SQUARE] * 5)
    summary = scan_dataset(tmp_path / "images", tmp_path / "reg")
    assert [i.path.name for i in summary.items if i.is_reg] == ["img00.png", "img01.png"]
    assert (summary.num_reg_images, summary.num_reg_images_used) == (5, 2)
    assert "folders.regularization" in {p.field for p in summary.warnings}


def test_regularisation_repeats_can_overshoot_as_in_kohya(tmp_path: Path) -> None:
    add_images(tmp_path / "images" / "4_a", [SQUARE])
    add_images(tmp_path / "reg" / "3_r", [SQUARE] * 2)
    summary = scan_dataset(tmp_path / "images", tmp_path / "reg")
    assert [i.repeats for i in summary.items if i.is_reg] == [3, 3]  # 3 < 4, so the second joins
    assert summary.num_reg_images_used == 6


def test_concepts_report_tokens_repeats_and_caption_counts(tmp_path: Path) -> None:
    add_images(tmp_path / "images" / "10_mychar woman", [SQUARE] * 3, captions={"img00": "mychar, red hair\nignored"})
    summary = scan_dataset(tmp_path / "images")
    (concept,) = summary.concepts
    assert (concept.tokens, concept.repeats, concept.image_count) == ("mychar woman", 10, 3)
    assert (concept.captions_found, concept.captions_missing) == (1, 2)
    captions = {i.path.name: (i.caption, i.caption_from_file) for i in summary.items}
    assert captions["img00.png"] == ("mychar, red hair", True)
    assert captions["img01.png"] == ("mychar woman", False)
    assert summary.tag_frequency == {"10_mychar woman": {"mychar": 1, "red hair": 1, "mychar woman": 2}}


def test_caption_extension_without_dot_and_other_extensions(tmp_path: Path) -> None:
    add_images(tmp_path / "images" / "1_x", [SQUARE])
    (tmp_path / "images" / "1_x" / "img00.caption").write_text("from caption file")
    summary = scan_dataset(tmp_path / "images", caption_extension="caption")
    assert summary.items[0].caption == "from caption file"
    assert summary.warnings == []


def test_exif_rotated_jpeg_is_sized_as_displayed(tmp_path: Path) -> None:
    folder = tmp_path / "images" / "1_x"
    folder.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (10, 6)).save(folder / "photo.JPG", exif=exif.tobytes())
    (item,) = scan_dataset(tmp_path / "images").items
    assert item.original_size == (6, 10)
    assert item.bucket == (384, 640)


def test_event_dict_is_plain_data(layout: Path) -> None:
    import json

    summary = scan_dataset(layout / "images")
    event = json.loads(json.dumps(summary.to_event_dict()))
    assert event["steps_per_epoch"] == 40 and event["buckets"][0] == {"width": 512, "height": 512, "count": 30}


# --- problems --------------------------------------------------------------------------------


def test_damaged_images_are_errors_naming_each_file(layout: Path) -> None:
    folder = layout / "images" / "10_a"
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("hello")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(folder / "cut.png")
    data = (folder / "cut.png").read_bytes()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    summary = scan_dataset(layout / "images")
    errors = {Path(p.field).name: p.message for p in summary.errors}
    assert set(errors) == {"empty.png", "text.jpg", "cut.png"}
    assert "empty" in errors["empty.png"] and "truncated" in errors["cut.png"]
    assert summary.num_train_images == 40  # the damaged files are not counted


def test_folder_without_repeat_prefix_is_skipped_with_a_warning(layout: Path) -> None:
    add_images(layout / "images" / "mychar", [SQUARE] * 4)
    summary = scan_dataset(layout / "images")
    assert summary.num_train_images == 40
    (problem,) = [p for p in summary.warnings if p.field.endswith("mychar")]
    assert "10_mychar" in problem.hint


def test_empty_concept_folder_is_a_warning(layout: Path) -> None:
    (layout / "images" / "3_empty" / "nested").mkdir(parents=True)
    summary = scan_dataset(layout / "images")
    (problem,) = [p for p in summary.warnings if p.field.endswith("3_empty")]
    assert "no images" in problem.message and "nested" in problem.hint


def test_caption_file_without_image_is_reported(layout: Path) -> None:
    (layout / "images" / "10_a" / "orphan.txt").write_text("lonely")
    summary = scan_dataset(layout / "images")
    assert any("orphan.txt" in p.message for p in summary.warnings)


def test_other_caption_extension_beside_images_is_reported(layout: Path) -> None:
    (layout / "images" / "10_a" / "img00.caption").write_text("a caption in the wrong file")
    summary = scan_dataset(layout / "images")
    (problem,) = [p for p in summary.warnings if ".caption" in p.message]
    assert "img00.caption" in problem.message and "training.caption_extension" in problem.hint


def test_non_utf8_caption_warns_and_falls_back_to_tokens(tmp_path: Path) -> None:
    add_images(tmp_path / "images" / "2_tok", [SQUARE])
    (tmp_path / "images" / "2_tok" / "img00.txt").write_bytes("caf\xe9".encode("latin-1"))
    summary = scan_dataset(tmp_path / "images")
    assert summary.items[0].caption == "tok"
    (problem,) = summary.warnings
    assert problem.field.endswith("img00.txt") and "UTF-8" in problem.message


def test_empty_caption_file_falls_back_to_tokens(tmp_path: Path) -> None:
    add_images(tmp_path / "images" / "2_tok", [SQUARE], captions={"img00": "  \n"})
    summary = scan_dataset(tmp_path / "images")
    assert summary.items[0].caption == "tok" and summary.concepts[0].captions_missing == 1
    assert any("empty" in p.message for p in summary.warnings)


def test_no_usable_image_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "images" / "10_a").mkdir(parents=True)
    summary = scan_dataset(tmp_path / "images")
    assert "folders.images" in {p.field for p in summary.errors}
    with pytest.raises(ProblemError):
        summary.raise_for_errors()


def test_pointing_at_a_concept_folder_hints_at_its_parent(tmp_path: Path) -> None:
    add_images(tmp_path / "10_mychar", [SQUARE])
    summary = scan_dataset(tmp_path / "10_mychar")
    (problem,) = [p for p in summary.errors if p.field == "folders.images"]
    assert "10_mychar" in problem.hint
    assert any("directly" in p.message for p in summary.warnings)


def test_missing_folders_are_errors_not_exceptions(tmp_path: Path) -> None:
    summary = scan_dataset(tmp_path / "nope", tmp_path / "also-nope")
    assert {"folders.images", "folders.regularization"} <= {p.field for p in summary.errors}
    (tmp_path / "file").write_text("x")
    assert "folders.images" in fields(scan_dataset(tmp_path / "file"))


def test_symlink_loops_do_not_hang_and_are_reported(layout: Path) -> None:
    images = layout / "images"
    os.symlink(images / "10_a" / "loop.png", images / "10_a" / "loop.png")
    os.symlink(images / "2_loop", images / "2_loop")
    os.symlink(images, images / "10_up")  # a concept folder that leads back to the root
    os.symlink(images / "10_a", images / "10_a" / "self")
    started = time.perf_counter()
    summary = scan_dataset(images)
    assert time.perf_counter() - started < 5
    assert summary.num_train_images == 40
    assert any(p.field.endswith("loop.png") and p.is_error for p in summary.problems)
    assert any(p.field.endswith("2_loop") for p in summary.warnings)
    assert any(p.field.endswith("10_up") for p in summary.warnings)


def problems_seen_without_root_powers(images: Path) -> list[str]:
    """Scan in a child process that cannot bypass file permissions (root drops the capability)."""
    code = "import sys; from engine.dataset.scan import scan_dataset; print(*scan_dataset(sys.argv[1]).problems, sep='\\n')"
    command = [sys.executable, "-c", code, str(images)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.skip("running as root without setpriv: permissions cannot be tested")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    result = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot run an unprivileged scan here: {result.stderr.strip()[-200:]}")
    return result.stdout.splitlines()


def test_unreadable_files_and_folders_are_reported(layout: Path) -> None:
    image = layout / "images" / "10_a" / "img00.png"
    folder = layout / "images" / "5_b"
    image.chmod(0)
    folder.chmod(0)
    try:
        lines = problems_seen_without_root_powers(layout / "images")
    finally:
        image.chmod(0o644)
        folder.chmod(0o755)
    assert any(line.startswith("error:") and "img00.png" in line and "permission" in line for line in lines)
    assert any(line.startswith("error:") and "5_b" in line and "permission" in line for line in lines)
    assert not any("5_b" in line and "no images" in line for line in lines)


def test_unsupported_formats_and_loose_images_are_warnings(layout: Path) -> None:
    Image.new("RGB", (4, 4)).save(layout / "images" / "10_a" / "anim.gif")
    Image.new("RGB", (4, 4)).save(layout / "images" / "loose.png")
    summary = scan_dataset(layout / "images")
    assert any("anim.gif" in p.message for p in summary.warnings)
    assert any("loose.png" in p.message for p in summary.warnings)
    assert summary.errors == [] and summary.num_train_images == 40


def test_image_smaller_than_step_with_no_upscale_is_an_error(tmp_path: Path) -> None:
    add_images(tmp_path / "images" / "1_x", [(50, 40), (300, 200)])
    summary = scan_dataset(tmp_path / "images", bucket_no_upscale=True)
    (problem,) = summary.errors
    assert problem.field.endswith("img00.png")
    assert [i.bucket for i in summary.items] == [(256, 192)]


def test_bad_settings_become_problems(layout: Path) -> None:
    summary = scan_dataset(layout / "images", batch_size=0, bucket_min=1024, bucket_step=64)
    assert {"training.batch_size", "buckets.min_resolution"} <= fields(summary)
    assert summary.buckets == {(512, 512): 40}  # falls back to one fixed bucket


# --- synthetic dataset -----------------------------------------------------------------------


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthetic_dataset_is_deterministic_and_scans_cleanly(tmp_path: Path) -> None:
    images, reg = make_synthetic_dataset(tmp_path / "one", seed=3)
    make_synthetic_dataset(tmp_path / "two", seed=3)
    make_synthetic_dataset(tmp_path / "three", seed=4)
    assert tree(tmp_path / "one") == tree(tmp_path / "two")
    assert tree(tmp_path / "one") != tree(tmp_path / "three")
    summary = scan_dataset(images, reg, max_resolution=(64, 64), bucket_min=32, bucket_max=128, bucket_step=32)
    assert summary.problems == []
    assert [c.name for c in summary.concepts] == ["3_bluesquare shape", "4_redcircle shape", "1_shape"]
    assert summary.num_train_images == 3 * 3 + 4 * 4 and summary.num_reg_images == 4
    assert len(summary.buckets) > 1
    assert all(i.caption == "shape" for i in summary.items if i.is_reg)


def test_synthetic_dataset_never_writes_into_a_used_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ProblemError):
        make_synthetic_dataset(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --- cost ------------------------------------------------------------------------------------


def test_scanning_200_small_images_is_fast(tmp_path: Path) -> None:
    for folder_index in range(4):
        folder = tmp_path / "images" / f"{folder_index + 1}_concept{folder_index}"
        add_images(folder, [(16 + folder_index * 8, 16)] * 50, captions={f"img{i:02d}": "a, b" for i in range(0, 50, 2)})
    started = time.perf_counter()
    summary = scan_dataset(tmp_path / "images")
    elapsed = time.perf_counter() - started
    print(f"\nscan of 200 images: {elapsed * 1000:.0f} ms")
    assert len(summary.items) == 200 and summary.problems == []
    assert elapsed < 5  # a loose guard; the number printed above is what matters


def test_scan_modules_import_no_torch() -> None:
    code = (
        "import sys, engine.dataset.scan, engine.dataset.buckets, engine.dataset.captions, "
        "engine.dataset.synthetic; sys.exit('torch' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
