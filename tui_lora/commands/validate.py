"""`tui-lora validate run.yaml`: check a run file and its dataset and print the plan. No torch."""

from __future__ import annotations

import sys

from engine.config import load_run_file
from engine.config.settings_subsets import describe_entry
from engine.plan import plan_run
from engine.problems import ProblemError

from ..dashboard.formatting import size as format_size


def validate_command(path: str) -> int:
    try:
        cfg, warnings = load_run_file(path)
    except ProblemError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{path}: not valid ({len(exc.errors)} error(s))", file=sys.stderr)
        return 2
    plan = plan_run(cfg)
    from engine.train.preflight import environment_problems  # no torch: packages and the model cache only

    problems = warnings + plan.problems + environment_problems(cfg)
    changed = cfg.non_default()
    print(f"run file: {path}")
    if changed:
        print("settings changed from defaults:")
        for key, value in changed.items():
            print(f"  {key}: {value}")
    data = plan.dataset
    print(f"dataset: {len(data.concepts)} folder(s), {data.num_train_images} training images with repeats, "
          f"{data.num_reg_images} regularisation images")
    for concept in data.concepts:
        kind = "reg " if concept.is_regularization else ""
        print(f"  {kind}{concept.folder.name}: {concept.image_count} images × {concept.repeats} repeats, "
              f"captions {concept.captions_found} found / {concept.captions_missing} missing"
              + (_subset_note(cfg, concept.subset) if concept.subset is not None else ""))
    if data.buckets:
        print("buckets: " + ", ".join(f"{w}×{h}: {n}" for (w, h), n in data.buckets.items()))
    print(f"steps per epoch: {plan.steps_per_epoch}")
    print(f"epochs: {plan.epochs}")
    print(f"total steps: {plan.total_steps}")
    print(f"warmup steps: {plan.warmup_steps}")
    stop = plan.text_encoder_stop_step
    print(f"text encoder stop step: {stop if stop is not None else 'never'}")
    print(f"alpha / rank: {cfg.network.alpha:g} / {cfg.network.rank} = {plan.lora_scale:.4g}")
    if plan.conv_scale is not None:
        print(f"conv alpha / conv rank: {plan.conv_scale:.4g}")
    size = plan.estimated_file_bytes
    print(f"estimated file size: {format_size(size) if size is not None else 'unknown until the model is built'}")
    _print_vram(cfg, plan)
    for problem in problems:
        print(problem, file=sys.stderr if problem.is_error else sys.stdout)
    errors = [p for p in problems if p.is_error]
    if errors:
        print(f"{path}: not valid ({len(errors)} error(s))", file=sys.stderr)
        return 2
    print(f"{path}: valid" + (f" with {len(problems)} warning(s)" if problems else ""))
    return 0


def _subset_note(cfg, index: int) -> str:
    entry = cfg.dataset.subsets[index]
    return f" (dataset.subsets[{index}]: {describe_entry(entry)})"


def _print_vram(cfg, plan) -> None:
    from engine.config import SETTINGS
    from engine.vram import estimate_vram, planned_gpu_bytes, ways_to_fit
    from engine.vram.report import breakdown_lines, fit_text, fix_lines, plan_lines

    estimate = estimate_vram(cfg.values, buckets=list(plan.dataset.buckets))
    if estimate is None:
        print("estimated peak VRAM: unknown until the built-in model is built (first training run)")
        return
    gpu_bytes, _ = planned_gpu_bytes(cfg.values)
    print(f"estimated peak VRAM: {estimate.total_gib:.1f} GiB — {fit_text(estimate, gpu_bytes)}")
    for row in breakdown_lines(estimate):
        print(row)
    if gpu_bytes and not estimate.fits(gpu_bytes):
        print("ways to fit, cheapest first (what each saves alone, and what it costs):")
        for row in fix_lines(ways_to_fit(cfg.values, set(SETTINGS.keys()), gpu_bytes=gpu_bytes)):
            print(row)
        for row in plan_lines(cfg.values, gpu_bytes, set(SETTINGS.keys())):
            print(row)
