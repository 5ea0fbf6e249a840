"""`tui-lora demo`: the built-in tiny model, a generated dataset, and a short real training run.

Everything goes into one folder (default `./tui-lora-demo`). An existing demo folder is reused:
its dataset and run file are kept, and a new output name is chosen instead of replacing a LoRA.
`--family` picks which built-in tiny model trains (SD 1.x by default; every family that has one):
each family keeps its own run file and LoRA name in the shared folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

DEMO_SETTINGS = {
    "model.quick_pick": "builtin-tiny-sd1",
    "folders.output_name": "demo_lora",
    "folders.training_comment": "tui-lora demo on the built-in tiny model",
    "network.rank": 4,
    "network.alpha": 4.0,
    "training.batch_size": 2,
    "training.epochs": 2,
    "training.save_every_n_epochs": 1,
    "training.seed": 1234,
    "training.cpu_threads_per_process": None,  # the idle CPUs: a busy machine gets fewer threads
    "buckets.step": 32,
    "optimizer.name": "AdamW",
    "optimizer.learning_rate": 1e-3,
    "optimizer.text_encoder_lr": 5e-4,
    "optimizer.scheduler": "cosine",
}


DEFAULT_FAMILY = "sd1"


def tiny_picks() -> dict[str, str]:
    """Family -> its built-in tiny model's quick pick (the families a demo can train)."""
    from engine.config.settings_model import QUICK_PICKS

    return {quick["family"]: pick for pick, quick in QUICK_PICKS.items() if pick.startswith("builtin-tiny-")}


def demo_settings(family: str = DEFAULT_FAMILY) -> dict:
    """The demo's run settings for `family`'s tiny model (unknown families raise ValueError)."""
    picks = tiny_picks()
    if family not in picks:
        raise ValueError(f"no built-in tiny model for family '{family}'; choose one of {', '.join(picks)}")
    values = dict(DEMO_SETTINGS, **{"model.quick_pick": picks[family]})
    if family != DEFAULT_FAMILY:  # own names, so demos of several families share one folder
        values["folders.output_name"] = f"demo_{family}_lora"
    return values


def prepare_demo(folder: Path, family: str = DEFAULT_FAMILY) -> Path:
    """Dataset and run file in `folder`; returns the run file. Never replaces user files."""
    from engine.config import RunConfig, load_run_file, save_run_file
    from engine.dataset.synthetic import make_synthetic_dataset
    from engine.output_names import next_free_name

    settings = demo_settings(family)

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    if not data.exists():
        make_synthetic_dataset(data, seed=0, size=64)
    run_file = folder / ("demo.yaml" if family == DEFAULT_FAMILY else f"demo_{family}.yaml")
    if run_file.exists():
        cfg, _ = load_run_file(run_file)
    else:
        values = dict(settings)
        values.update({"folders.images": str((data / "images").resolve()),
                       "folders.regularization": str((data / "regularization").resolve()),
                       "folders.output": str((folder / "output").resolve())})
        cfg = RunConfig.from_values(values)
        save_run_file(cfg, run_file)
    final = Path(cfg.folders.output) / f"{cfg.folders.output_name}.safetensors"
    if final.exists() and not cfg.overwrite:
        # A second demo run: keep the earlier LoRA and train under the next free name.
        fresh = cfg.replace(folders__output_name=next_free_name(final.parent, cfg.folders.output_name, "safetensors"))
        run_file = run_file.with_name(f"{fresh.folders.output_name}.yaml")
        if not run_file.exists():
            save_run_file(fresh, run_file)
    return run_file


def wrapped(text: str) -> str:
    """At the terminal's width, breaking between words (never inside one; a long path stays whole)."""
    import shutil
    import textwrap

    width = min(shutil.get_terminal_size((80, 24)).columns, 100) - 1
    return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False,
                         subsequent_indent="  ")


def demo_command(folder: str | None, family: str = DEFAULT_FAMILY) -> int:
    from engine.runner import train_main

    root = Path(folder or "tui-lora-demo")
    print(f"preparing the demo in {root.resolve()} ({demo_settings(family)['model.quick_pick']}, generated images)")
    run_file = prepare_demo(root, family)
    print(f"run file: {run_file}")
    code = train_main(str(run_file))
    if code == 0:
        from engine.config import load_run_file

        cfg, _ = load_run_file(run_file)
        lora = Path(cfg.folders.output) / f"{cfg.folders.output_name}.safetensors"
        print()
        for paragraph in (
            f"Your LoRA: {lora.resolve()}",
            "It is a Kohya-format file: copy it into your image tool's LoRA folder "
            "(A1111/Forge: models/Lora, ComfyUI: models/loras).",
            "This one was trained on a tiny random model, so it only shows the workflow; for a real LoRA run "
            "`tui-lora` and pick your base model, or edit the run file and `tui-lora train` it.",
            f"Watch or revisit it: tui-lora runs; tui-lora monitor. Edit the settings: tui-lora edit {run_file}",
        ):
            print(wrapped(paragraph))
    return code


if __name__ == "__main__":
    sys.exit(demo_command(None))
