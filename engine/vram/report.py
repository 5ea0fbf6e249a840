"""The estimate as text lines (validate, logs) and the one-line verdict the UI shows."""

from __future__ import annotations

from typing import Any, Mapping

from .estimate import GIB, VramEstimate, estimate_vram
from .fixes import Fix, plan_to_fit


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
    return [f"  {index}. {fix.label}: saves {fix.saving_bytes / GIB:.1f} GiB" + (f" ({_cost(fix)})" if _cost(fix) else "")
            for index, fix in enumerate(fixes, 1)]


def _cost(fix: Fix) -> str:
    parts = []
    if fix.cost.speed >= 0.01:
        parts.append(f"about {fix.cost.speed:.0%} slower")
    elif fix.cost.speed <= -0.01:
        parts.append("faster")
    if fix.cost.note:
        parts.append(fix.cost.note)
    return "; ".join(parts)


def plan_lines(values: Mapping[str, Any], gpu_bytes: int, known_keys: set[str] | None = None) -> list[str]:
    """The settings that together make the run fit the card, as YAML-like lines, and the new estimate."""
    found = plan_to_fit(values, gpu_bytes, known_keys)
    size = f"{gpu_bytes / GIB:.0f} GiB"
    if found is None:
        return [f"no combination of the savers above fits {size}: use a larger GPU"]
    changes, _ = found
    after = estimate_vram({**values, **changes})
    rows = [f"to fit {size}, set (estimate {after.total_gib:.1f} GiB):"]
    rows += [f"  {key}: {_yaml(value)}" for key, value in changes.items()]
    return rows


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
