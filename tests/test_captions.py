"""Caption shuffling, keep_tokens, dropout and the ss_tag_frequency counts."""

from __future__ import annotations

import random

from engine.dataset.captions import count_tags, first_line, process_caption, split_tags, tag_frequency

CAPTION = "mychar, woman, red hair, smiling, outdoors, sunny"


def test_without_augmentation_the_caption_is_the_first_line_and_no_randomness_is_drawn() -> None:
    rng = random.Random(1)
    state = rng.getstate()
    assert process_caption("  mychar, woman  \nsecond line", rng=rng) == "mychar, woman"
    assert rng.getstate() == state


def test_shuffle_keeps_the_leading_tokens_and_permutes_the_rest() -> None:
    orders = set()
    for seed in range(30):
        result = process_caption(CAPTION, shuffle=True, keep_tokens=2, rng=random.Random(seed))
        tags = split_tags(result)
        assert tags[:2] == ["mychar", "woman"]
        assert sorted(tags) == sorted(split_tags(CAPTION))
        orders.add(tuple(tags[2:]))
    assert len(orders) > 5  # it really shuffles


def test_shuffle_without_keep_tokens_can_move_the_first_tag() -> None:
    firsts = {split_tags(process_caption(CAPTION, shuffle=True, rng=random.Random(s)))[0] for s in range(40)}
    assert len(firsts) > 1


def test_shuffle_is_reproducible_with_the_same_seed() -> None:
    a = process_caption(CAPTION, shuffle=True, keep_tokens=1, rng=random.Random(7))
    b = process_caption(CAPTION, shuffle=True, keep_tokens=1, rng=random.Random(7))
    assert a == b


def test_keep_tokens_without_shuffle_leaves_the_caption_alone() -> None:
    assert process_caption(CAPTION, keep_tokens=3, rng=random.Random(0)) == CAPTION


def test_shuffle_drops_empty_tags() -> None:
    assert process_caption("a, , b,", shuffle=True, keep_tokens=2, rng=random.Random(0)) == "a, b"


def test_dropout_rate_one_always_empties_and_zero_never_does() -> None:
    rng = random.Random(3)
    assert all(process_caption(CAPTION, dropout_rate=1.0, rng=rng) == "" for _ in range(50))
    assert all(process_caption(CAPTION, dropout_rate=0.0, rng=rng) == CAPTION for _ in range(50))


def test_dropout_rate_empties_about_that_share_of_draws() -> None:
    rng = random.Random(11)
    dropped = sum(process_caption(CAPTION, dropout_rate=0.25, shuffle=True, rng=rng) == "" for _ in range(4000))
    assert 850 < dropped < 1150


def test_numpy_generator_works_as_rng() -> None:
    import numpy as np

    result = process_caption(CAPTION, shuffle=True, keep_tokens=1, rng=np.random.default_rng(0))
    assert split_tags(result)[0] == "mychar" and sorted(split_tags(result)) == sorted(split_tags(CAPTION))


def test_first_line_strips_whitespace() -> None:
    assert first_line("  hello \r\nworld") == "hello"
    assert first_line("") == ""


def test_tag_counts_are_lower_cased_per_caption_and_skip_empty_tags() -> None:
    assert count_tags(["Red Hair, smile", "red hair,, outdoors", ""]) == {"red hair": 2, "smile": 1, "outdoors": 1}


def test_tag_frequency_is_keyed_by_folder_and_merges_same_named_folders() -> None:
    result = tag_frequency([("10_mychar", ["mychar, woman", "mychar"]), ("1_woman", ["woman"]), ("10_mychar", ["woman"])])
    assert result == {"10_mychar": {"mychar": 2, "woman": 2}, "1_woman": {"woman": 1}}
    assert tag_frequency({"1_x": ["a, b"]}) == {"1_x": {"a": 1, "b": 1}}
