"""The doctor's caption checks: missing/empty/orphan/mixed files, trigger word, length, tags, keep_tokens."""

from __future__ import annotations

from engine.dataset.doctor.caption_checks import normalized_tag
from engine.dataset.doctor.tokens import estimate_tokens, load_counter
from tests.doctor_support import concept, doctor, only


def test_some_images_without_captions_warn_and_all_without_is_a_note(tmp_path):
    root = tmp_path / "img"
    folder = concept(root, "10_ohwx cat", 3, captions="ohwx, cat")
    (folder / "img2.txt").unlink()
    concept(root, "5_ohwx dog", 2, seed=1)
    report = doctor(root)
    partial, whole = sorted(report.by_code("captions.missing"), key=lambda f: f.severity, reverse=True)
    assert partial.severity == "warning" and "1 of 3 images in `10_ohwx cat`" in partial.message
    assert partial.paths == (str(folder / "img2.png"),) and "photo1.txt" in partial.advice
    assert whole.severity == "info" and "all 2 train with the caption `ohwx dog`" in whole.message


def test_empty_and_orphan_caption_files_are_reported(tmp_path):
    root = tmp_path / "img"
    folder = concept(root, "10_ohwx cat", 2, captions="ohwx, cat")
    (folder / "img1.txt").write_text("  \n")
    (folder / "gone.txt").write_text("ohwx, old")
    report = doctor(root)
    empty = only(report, "captions.empty")
    assert empty.paths == (str(folder / "img1.txt"),) and "folder's words `ohwx cat`" in empty.message
    orphan = only(report, "captions.orphan")
    assert orphan.paths == (str(folder / "gone.txt"),) and "rename each to match its image" in orphan.advice


def test_caption_files_of_another_extension_suggest_the_setting(tmp_path):
    root = tmp_path / "img"
    folder = concept(root, "10_ohwx cat", 2, captions="ohwx, cat")
    (folder / "img0.caption").write_text("ohwx, cat, sitting")
    item = only(doctor(root), "captions.mixed_extensions")
    assert "1 .caption" in item.message and "training.caption_extension to .caption" in item.advice


def test_trigger_word_missing_from_captions_that_exist(tmp_path):
    root = tmp_path / "img"
    folder = concept(root, "10_ohwx cat", 3, captions="ohwx, cat")
    (folder / "img1.txt").write_text("a cat on a sofa")
    item = only(doctor(root), "captions.trigger_missing")
    assert "`ohwx`" in item.message and "1 of 3 captions" in item.message
    assert item.paths == (str(folder / "img1.png"),) and "add `ohwx`" in item.advice


def test_regularisation_captions_are_not_asked_for_a_trigger(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_ohwx cat", 1, captions="ohwx, cat")
    reg = concept(tmp_path / "reg", "1_cat", 2, seed=3, captions="a cat")
    assert not doctor(root, regularization_dir=reg.parent).by_code("captions.trigger_missing")


def test_long_captions_are_estimated_without_a_tokenizer_and_say_so(tmp_path):
    root = tmp_path / "img"
    long_caption = "ohwx, " + ", ".join(f"tag{n} word" for n in range(40))
    folder = concept(root, "10_ohwx cat", 2, captions="ohwx, cat")
    (folder / "img1.txt").write_text(long_caption)
    report = doctor(root)
    item = only(report, "captions.too_long")
    assert item.paths == (str(folder / "img1.png"),) and "estimated; no local tokenizer" in item.message
    assert "max_token_length" in item.advice
    assert report.tokens.method == "estimate" and report.tokens.longest == estimate_tokens(long_caption)


def test_long_captions_are_counted_with_a_local_tokenizer_as_transformers_counts(tmp_path):
    from engine.models.tokenizer import build_clip_tokenizer, clip_vocab_and_merges

    folder = tmp_path / "tokenizer"
    folder.mkdir()
    vocab, merges = clip_vocab_and_merges()
    import json

    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    caption = "ohwx  Woman, blue_eyes, (masterpiece:1.2), café 1999"
    counter = load_counter(folder)
    assert counter.method == "tokenizer"
    assert counter.count(caption) == len(build_clip_tokenizer()(caption, add_special_tokens=False).input_ids)
    root = tmp_path / "img"
    images = concept(root, "10_ohwx cat", 1)
    (images / "img0.txt").write_text("ohwx, " + "photo of a red cat " * 20)
    item = only(doctor(root, tokenizer_dir=folder), "captions.too_long")
    assert "counted with the model's tokenizer" in item.message


def test_tag_table_and_tags_spelled_two_ways(tmp_path):
    root = tmp_path / "img"
    folder = concept(root, "10_ohwx cat", 3, captions="ohwx, blue_eyes, smile")
    (folder / "img2.txt").write_text("ohwx, blue eyes, rare tag")
    report = doctor(root)
    item = only(report, "captions.near_duplicate_tags")
    assert "`blue_eyes` (2) / `blue eyes` (1)" in item.message and "pick one spelling" in item.advice
    assert report.tags.top[0] == ("ohwx", 3) and "rare tag" in report.tags.once
    assert normalized_tag("Blue-Eyes") == normalized_tag("blue\\_eyes") == "blue eyes"


def test_keep_tokens_counted_in_words_is_explained(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_ohwx woman", 2, captions="ohwx woman, smiling, red dress")
    item = only(doctor(root, shuffle=True, keep_tokens=2, keep_tokens_known=True), "captions.keep_tokens_counts_words")
    assert "counts comma-separated tags" in item.message and "keep_tokens to 1" in item.advice


def test_shuffled_trigger_outside_the_kept_tags_is_reported(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_ohwx woman", 2, captions="smiling, ohwx, red dress")
    report = doctor(root, shuffle=True, keep_tokens=1, keep_tokens_known=True)
    assert "moves around" in only(report, "captions.trigger_shuffled").message
    assert not doctor(root, shuffle=False, keep_tokens=1, keep_tokens_known=True).by_code("captions.trigger_shuffled")
