"""Colour jitter (`color_aug` of a `dataset.subsets` entry), as sd-scripts does it.

A third of the draws change colour, the rest are left alone; a changed draw either turns the hue
by up to ±8 of the 180 hue steps sd-scripts counts in (±16°), or raises the pixel values to a power
between 0.95 and 1.05. Small, so the subject's colours stay recognisable; random every step, so it
cannot be used with cached latents.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

CHANGED_SHARE = 0.33
HUE_TURN = 8 / 180  # of a full turn
GAMMA_RANGE = (0.95, 1.05)


def jitter_colours(pixels: np.ndarray, rng: random.Random) -> np.ndarray:
    """H x W x 3 uint8 pixels, perhaps with the hue turned or a gamma applied."""
    if rng.random() > CHANGED_SHARE:
        return pixels
    if rng.random() > 0.5:
        turn = rng.uniform(-HUE_TURN, HUE_TURN)
        hsv = np.asarray(Image.fromarray(pixels, "RGB").convert("HSV")).copy()
        hue = hsv[..., 0].astype(np.int16) + round(turn * 256)
        hsv[..., 0] = np.mod(hue, 256).astype(np.uint8)  # PIL's hue runs 0-255 around the circle
        return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
    gamma = rng.uniform(*GAMMA_RANGE)
    # sd-scripts applies the power to 0-255 values directly; the gentler curve on 0-1 keeps whites white
    return np.clip(255.0 * (pixels / 255.0) ** gamma, 0, 255).astype(np.uint8)
