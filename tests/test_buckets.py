"""Bucket enumeration and selection against values worked out by hand from sd-scripts' algorithm
(make_bucket_resolutions, BucketManager.select_bucket, round_to_steps)."""

from __future__ import annotations

import pytest

from engine.dataset.buckets import (
    BucketPicker,
    BucketSettings,
    check_bucket_settings,
    cover_size,
    make_bucket_resolutions,
    round_to_step,
)

# (512, 512), sides 256..1024, step 64: area 262144. For each width w the height is
# min(1024, (262144 // w) // 64 * 64), e.g. w=320 -> 819 // 64 * 64 = 768, w=704 -> 372 -> 320;
# plus transposes and the square 512. Seventeen distinct sizes.
KOHYA_512 = [
    (256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640),
    (448, 576), (512, 512), (576, 448), (640, 384), (704, 320), (768, 320), (832, 256),
    (896, 256), (960, 256), (1024, 256),
]

# (768, 512): area 393216, square floor(sqrt(393216) / 64) * 64 = 576; w=448 -> 877 -> 832,
# w=576 -> 682 -> 640, w=704 -> 558 -> 512, w=896 -> 438 -> 384, w=960 -> 409 -> 384.
KOHYA_768x512 = [
    (256, 1024), (320, 1024), (384, 896), (384, 960), (384, 1024), (448, 832), (512, 704),
    (512, 768), (576, 576), (576, 640), (640, 576), (704, 512), (768, 512), (832, 448),
    (896, 384), (960, 384), (1024, 256), (1024, 320), (1024, 384),
]


def test_enumeration_matches_kohya_for_512_square() -> None:
    assert make_bucket_resolutions((512, 512), 256, 1024, 64) == KOHYA_512


def test_enumeration_matches_kohya_for_non_square_resolution() -> None:
    assert make_bucket_resolutions((768, 512), 256, 1024, 64) == KOHYA_768x512


def test_enumeration_drops_heights_below_min_side() -> None:
    # w=448 -> 576; w=640 -> 384 < 448 dropped; w=704, 768 -> 320 dropped.
    assert make_bucket_resolutions((512, 512), 448, 768, 64) == [(448, 576), (512, 512), (576, 448)]


def test_enumeration_for_tiny_resolution_with_small_step() -> None:
    # area 4096: w=32 -> 128, w=96 -> 42 // 32 * 32 = 32, w=128 -> 32.
    assert make_bucket_resolutions((64, 64), 32, 128, 32) == [(32, 96), (32, 128), (64, 64), (96, 32), (128, 32)]


def test_round_to_step_rounds_half_up_then_floors_to_grid() -> None:
    assert round_to_step(724.08, 64) == 704
    assert round_to_step(63.5, 64) == 64
    assert round_to_step(63.4, 64) == 0


@pytest.mark.parametrize(
    ("image", "bucket", "resized"),
    [
        ((1000, 600), (640, 384), (640, 384)),  # ratio 1.667 is exactly 640/384
        ((800, 600), (576, 448), (597, 448)),  # 1.333: 576/448=1.286 is nearest; match heights
        ((600, 1000), (384, 640), (384, 640)),
        ((512, 512), (512, 512), (512, 512)),
        ((4000, 100), (1024, 256), (10240, 256)),  # extreme ratio takes the widest bucket
    ],
)
def test_select_picks_nearest_ratio_and_covers_it(image, bucket, resized) -> None:
    choice = BucketPicker(BucketSettings((512, 512), True, 256, 1024, 64)).select(*image)
    assert choice.bucket == bucket
    assert choice.resized_size == resized
    assert choice.aspect_error == pytest.approx(bucket[0] / bucket[1] - image[0] / image[1])


def test_select_breaks_ratio_ties_by_sorted_order() -> None:
    # 64x96 (0.667) is equally far (up to float rounding, which favours the first) from
    # 32x96 (0.333) and 64x64 (1.0); sd-scripts' argmin keeps the first in sorted order.
    choice = BucketPicker(BucketSettings((64, 64), True, 32, 128, 32)).select(64, 96)
    assert choice.bucket == (32, 96)


def test_disabled_buckets_send_every_image_to_the_training_resolution() -> None:
    picker = BucketPicker(BucketSettings((512, 512), enabled=False))
    assert picker.resolutions == [(512, 512)]
    assert picker.select(1000, 600).bucket == (512, 512)
    assert picker.select(1000, 600).resized_size == (853, 512)  # 1000 * 512/600 = 853.3
    assert picker.select(300, 900).resized_size == (512, 1536)


@pytest.mark.parametrize(
    ("image", "bucket", "resized"),
    [
        ((300, 200), (256, 192), (300, 200)),  # under the area: native size, floored to the grid
        ((2000, 1000), (640, 320), (640, 320)),  # snapping the height keeps ratio 2 exactly
        ((1000, 700), (576, 384), (576, 403)),  # width snap (1.5) beats height snap (1.333)
    ],
)
def test_no_upscale_buckets_follow_the_image(image, bucket, resized) -> None:
    choice = BucketPicker(BucketSettings((512, 512), True, 256, 1024, 64, no_upscale=True)).select(*image)
    assert (choice.bucket, choice.resized_size) == (bucket, resized)


def test_no_upscale_image_smaller_than_step_gets_an_empty_bucket() -> None:
    choice = BucketPicker(BucketSettings((512, 512), True, 256, 1024, 64, no_upscale=True)).select(50, 40)
    assert choice.bucket == (0, 0)


def test_selection_is_deterministic() -> None:
    settings = BucketSettings((768, 512), True, 256, 1024, 64)
    sizes = [(w, h) for w in range(100, 2000, 137) for h in range(100, 2000, 151)]
    first = [BucketPicker(settings).select(*s) for s in sizes]
    assert first == [BucketPicker(settings).select(*s) for s in sizes]


def test_cover_size_keeps_the_aspect_and_covers_the_bucket() -> None:
    assert cover_size((800, 600), (576, 448)) == (597, 448)


def test_settings_accept_yaml_lists() -> None:
    assert BucketSettings([512, 768]).max_resolution == (512, 768)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (BucketSettings((512, 512), True, 640, 1024, 64), "buckets.min_resolution"),
        (BucketSettings((512, 512), True, 256, 384, 64), "buckets.max_resolution"),
        (BucketSettings((512, 512), True, 256, 128, 64), "buckets.max_resolution"),
        (BucketSettings((512, 512), True, 256, 1024, 0), "buckets.step"),
        (BucketSettings((0, 512), True, 256, 1024, 64), "training.max_resolution"),
    ],
)
def test_bad_bucket_settings_are_problems_naming_the_setting(settings, field) -> None:
    problems = check_bucket_settings(settings)
    assert problems and all(p.is_error for p in problems)
    assert field in {p.field for p in problems}


def test_good_settings_have_no_problems() -> None:
    assert check_bucket_settings(BucketSettings()) == []
    # no_upscale ignores the side limits, as sd-scripts does
    assert check_bucket_settings(BucketSettings((512, 512), True, 640, 384, 64, no_upscale=True)) == []
