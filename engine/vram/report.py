"""The estimate as text lines (validate, logs) and the one-line verdict the UI shows."""

from __future__ import annotations

from .estimate import GIB, VramEstimate
from .fixes import Fix


def verdict(estimate: VramEstimate, gpu_bytes: int | None) -> str:
    peak = f"peak ≈ {estimate.total_gib:.1f} GiB"
    return f"{peak} ({fit_text(estimate, gpu_bytes)})" if not gpu_bytes else f"{peak} — {fit_text(estimate, gpu_bytes)}"


def fit_text(estimate: VramEstimate, gpu_bytes: int | None) -> str:
    """Whether the estimate fits the GPU, in words; names the setting when the size is unknown."""
    if not gpu_bytes:
        return "GPU size unknown: set hardware.vram_gb"
    size = f"{gpu_bytes / GIB:.0f} GiB GPU"
    return f"fits this {size}" if estimate.fits(gpu_bytes) else f"does not fit this {size}"


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
