"""Images: what training will do with each usable image, and which ones will hurt the LoRA.

Unreadable images are not found here: the scan marks them as errors (training refuses them) and
`blocking.py` turns those into findings. These checks look at images that load: their format,
colour mode, rotation, and how the bucket maths of `engine.dataset.buckets` will resize and crop
them. Findings are grouped per concept folder, so a folder of 500 small images is one finding.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from engine.dataset.buckets import BucketPicker

from .facts import ImageFacts
from .findings import Finding, counted, finding, verb
from .layout import FolderListing

_FORMATS_BY_EXTENSION = {
    ".png": {"PNG"},
    ".jpg": {"JPEG", "MPO"},
    ".jpeg": {"JPEG", "MPO"},
    ".webp": {"WEBP"},
    ".bmp": {"BMP", "DIB"},
}
UPSCALE_WARNING = 1.5  # upscaled this much or more: visibly soft
CROP_WARNING = 0.2  # more than this fraction of the image cut off to fit the bucket
SIZE_SPREAD = 4.0  # short sides in one folder differing this much


def _examples(items: list[tuple[Path, str]], shown: int = 2) -> str:
    text = ", ".join(f"{path.name} {detail}".strip() for path, detail in items[:shown])
    return text + (f", … {len(items) - shown} more" if len(items) > shown else "")


def check_images(
    folders: Iterable[FolderListing], facts: dict[Path, ImageFacts], picker: BucketPicker | None
) -> list[Finding]:
    found: list[Finding] = []
    for folder in folders:
        usable = [(p, facts[p]) for p in folder.images if p in facts and not facts[p].error]
        if usable:
            found += _check_folder(folder.path.name, usable, picker)
    return found


def _check_folder(name: str, usable: list[tuple[Path, ImageFacts]], picker: BucketPicker | None) -> list[Finding]:
    found: list[Finding] = []

    def add(code, severity, hits, message, advice):
        if hits:
            n = len(hits)
            words = dict(n=n, s="" if n == 1 else "s", are="is" if n == 1 else "are", have="has" if n == 1 else "have")
            found.append(finding(code, severity, message.format(name=name, ex=_examples(hits), **words),
                                 advice, [p for p, _ in hits]))

    wrong = [(p, f"is {f.format}") for p, f in usable
             if f.format not in _FORMATS_BY_EXTENSION.get(p.suffix.lower(), {f.format})]
    add("images.wrong_extension", "warning", wrong,
        "{n} file{s} in `{name}` {are} not the format their extension says ({ex})",
        "rename them to their real extension or re-save them; training reads them by content, "
        "but other tools may refuse them")
    animated = [(p, f"{f.frames} frames") for p, f in usable if f.frames > 1 and f.format not in ("MPO",)]
    add("images.animated", "warning", animated,
        "{n} animated image{s} in `{name}`: only the first frame is trained ({ex})",
        "export the frames you want as separate still images")
    add("images.cmyk", "warning", [(p, "") for p, f in usable if f.mode == "CMYK"],
        "{n} CMYK image{s} in `{name}`: converted to RGB without colour management, so colours may shift ({ex})",
        "convert them to sRGB (RGB) in an image editor before training")
    transparent = [(p, "") for p, f in usable if f.transparent]
    add("images.transparency", "warning", transparent,
        "{n} image{s} in `{name}` {have} transparent areas: training fills them with white, so the LoRA "
        "learns white backgrounds ({ex})",
        "put them on the background you want them learned with, or accept white")
    opaque = [(p, "") for p, f in usable if f.has_alpha and not f.transparent]
    add("images.alpha_unused", "info", opaque,
        "{n} image{s} in `{name}` {have} an alpha channel that is fully opaque: it is dropped ({ex})",
        "nothing to do; saving them without alpha makes them smaller")
    add("images.high_bit_depth", "info", [(p, f"{f.bits}-bit") for p, f in usable if f.bits > 8],
        "{n} image{s} in `{name}` {have} more than 8 bits per channel: training reduces them to 8 bits ({ex})",
        "nothing to do; the extra depth is not used by the model")
    add("images.palette", "info", [(p, "") for p, f in usable if f.mode == "P"],
        "{n} palette (indexed-colour) image{s} in `{name}`: expanded to full colour; any banding or "
        "dithering from the palette is learned too ({ex})",
        "use full-colour originals if you have them")
    add("images.greyscale", "info", [(p, "") for p, f in usable if f.mode in ("L", "LA", "I;16", "I", "F", "1")],
        "{n} greyscale image{s} in `{name}`: trained as grey RGB, so the LoRA may lean towards grey ({ex})",
        "fine for a black-and-white style; otherwise use colour images or caption them `monochrome`")
    rotated = [(p, f"orientation {f.orientation}") for p, f in usable if f.orientation not in (0, 1)]
    add("images.exif_rotation", "info", rotated,
        "{n} image{s} in `{name}` {are} stored sideways with an EXIF rotation: tui-lora turns them upright, "
        "but tools that ignore EXIF (some captioners, other trainers) see them sideways ({ex})",
        "re-save them with the rotation applied so every tool sees them upright")
    if picker is not None:
        found += _bucket_findings(name, usable, picker)
    shorts = [(p, min(f.width, f.height)) for p, f in usable]
    small, large = min(shorts, key=lambda x: x[1]), max(shorts, key=lambda x: x[1])
    if small[1] and large[1] / small[1] >= SIZE_SPREAD:
        found.append(finding(
            "images.mixed_sizes", "info",
            f"image sizes in `{name}` differ a lot: the short side goes from {small[1]} px ({small[0].name}) "
            f"to {large[1]} px ({large[0].name})",
            "the small ones train softer than the large ones; bring them to similar sizes if that matters",
            [small[0], large[0]],
        ))
    return found


def _bucket_findings(name: str, usable: list[tuple[Path, ImageFacts]], picker: BucketPicker) -> list[Finding]:
    upscaled: list[tuple[float, Path, str]] = []
    cropped: list[tuple[float, Path, str]] = []
    for path, facts in usable:
        try:
            choice = picker.select(facts.width, facts.height)
        except ValueError:
            continue
        (bw, bh), (rw, rh) = choice.bucket, choice.resized_size
        if bw < 1 or bh < 1:
            continue  # too small even for one step: the scan reports it as an error
        scale = rw / facts.width
        if scale > 1.01:
            upscaled.append((scale, path, f"{facts.width}×{facts.height} → {rw}×{rh}"))
        cut = 1 - (bw * bh) / (rw * rh)
        if cut > CROP_WARNING:
            cropped.append((cut, path, f"{facts.width}×{facts.height} in {bw}×{bh}"))
    found = []
    if upscaled:
        upscaled.sort(key=lambda x: -x[0])
        worst = upscaled[0][0]
        smallest = min(min(b) for b in picker.resolutions) if picker.resolutions else None
        below = f" (the smallest bucket side is {smallest} px)" if smallest else ""
        found.append(finding(
            "images.upscaled", "warning" if worst >= UPSCALE_WARNING else "info",
            f"{counted(len(upscaled), 'image')} in `{name}` {verb(len(upscaled), 'is', 'are')} smaller than the bucket and upscaled up to "
            f"{worst:.1f}×{below}, so they train soft ({_examples([(p, d) for _, p, d in upscaled])})",
            "use larger originals, upscale them beforehand with a good upscaler, or turn on buckets.no_upscale",
            [p for _, p, _ in upscaled],
        ))
    if cropped:
        cropped.sort(key=lambda x: -x[0])
        found.append(finding(
            "images.extreme_aspect", "warning",
            f"{counted(len(cropped), 'image')} in `{name}` {verb(len(cropped), 'has', 'have')} an aspect ratio no bucket fits: up to "
            f"{cropped[0][0]:.0%} of the image is cropped away ({_examples([(p, d) for _, p, d in cropped])})",
            "crop them yourself to a less extreme ratio so you choose what stays, or split panoramas in parts",
            [p for _, p, _ in cropped],
        ))
    return found
