"""The estimate as text lines (validate, logs) and the one-line verdict the UI shows."""

from __future__ import annotations

from .estimate import GIB, VramEstimate
from .fixes import Fix


def verdict(estimate: VramEstimate, gpu_bytes: int | None) -> str:
    peak = f"peak ≈ {estimate.total_gib:.1f} GiB"
    if not gpu_bytes:
        return peak + " (GPU size unknown: set hardware.vram_gb)"
    size = f"{gpu_bytes / GIB:.0f} GiB GPU"
    if estimate.fits(gpu_bytes):
        return f"{peak} — fits this {size}"
    return f"{peak} — does not fit this {size}"


def breakdown_lines(estimate: VramEstimate) -> list[str]:
    width = max(len(line.name) for line in estimate.lines)
    rows = [f"  {line.name:<{width}}  {line.bytes / GIB:6.2f} GiB  {line.detail}".rstrip()
            for line in estimate.lines]
    rows.append(f"  (model shapes from {estimate.source}; largest bucket "
                f"{estimate.resolution[0]}×{estimate.resolution[1]})")
    return rows


def fix_lines(fixes: list[Fix]) -> list[str]:
    return [f"  {index}. {fix.label}: saves {fix.saving_bytes / GIB:.1f} GiB"
            for index, fix in enumerate(fixes, 1)]
