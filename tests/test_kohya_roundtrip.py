"""Export → import is the identity: every setting with a Kohya key (the schema's `kohya=`), through
the Kohya GUI .json and through sd-scripts' TOML files and command line.

The settings and their test values come from the schema, so a setting added later is covered
without touching this file; only a setting whose text has a format needs a value below.
"""

from __future__ import annotations

import json

import pytest

from engine.config import SETTINGS, RunConfig
from engine.config.kohya_import import convert_kohya_settings
from engine.config.validation import validate_values
from engine.kohya.export_gui import export_gui
from engine.kohya.export_toml import COMMAND_NAME, export_toml
from engine.kohya.sources import import_kohya_file
from tui_lora.cli import main

# Settings whose text must have a form (a value made up from the kind alone would be refused).
FORMATTED = {
    "model.path": "/models/custom/model.safetensors",
    "optimizer.step_rules": "1:100,0.5:200,0.1",
    "network.weights": "/loras/start.safetensors",
    "logging.log_prefix": "exported_run",
    "optimizer.scheduler_type": "torch.optim.lr_scheduler.ExponentialLR",
    "optimizer.extra_args": ["weight_decay=0.02", "betas=0.9,0.95"],
    "folders.output_name": "exported_lora",
    "sampling.prompts": [{"prompt": "a cat on a chair", "negative": "blurry", "seed": 3, "steps": 20, "cfg": 6.5,
                          "width": 512, "height": 640}, "a dog"],
    "hardware.gpu_ids": [0, 1],
    "training.max_resolution": [640, 768],
    "training.caption_extension": ".caption",
    "network.lokr_factor": 4,
}
# Settings the round trip carries in another form, with where their value goes.
FOLDED = {
    "model.quick_pick": "the GUI names the model by its path; a pick comes back as itself (tested below)",
    "training.max_train_epochs": "the GUI folds it into the run's epochs (training.epochs), as Kohya does",
}
# Runs in which settings apply (a setting is tested in the first where its `applies` says so).
FLUX = {"model.quick_pick": "custom", "model.path": "/models/flux1-dev.safetensors", "model.family": "flux1",
        "model.config_dir": "/models/flux-configs", "model.clip_l": "/models/clip_l.safetensors",
        "model.t5xxl": "/models/t5xxl.safetensors", "model.ae": "/models/ae.safetensors", "training.attention": "sdpa"}
SD35 = {"model.quick_pick": "sd35-large", "model.path": "stabilityai/stable-diffusion-3.5-large", "model.family": "sd35",
        "training.attention": "sdpa"}
CONTEXTS = [
    {},
    {"model.family": "sd2"},
    {"model.family": "sdxl"},
    FLUX,
    {"network.weights": "/loras/start.safetensors"},
    {"captions.shuffle": True},
    {"training.noise_offset": 0.05},
    {"optimizer.scheduler": "cosine_with_restarts"},
    {"optimizer.scheduler": "polynomial"},
    {"sampling.prompts": ["a cat"]},
    {"folders.logging": "/logs"},
    {"training.save_every_n_epochs": 1},
    {"training.save_every_n_steps": 100},
    {"training.save_state": True},
    {"training.save_state": True, "training.save_every_n_steps": 100},
    {"training.ip_noise_gamma": 0.1},
    {**FLUX, "flux.timestep_sampling": "sigmoid"},
    SD35,
    {**SD35, "model.quick_pick": "custom", "model.path": "/models/sd3.5_large.safetensors",
     "model.clip_l": "/models/clip_l.safetensors", "model.t5xxl": "/models/t5xxl.safetensors",
     "model.config_dir": "/models/sd35-configs"},
    {**SD35, "sd35.weighting_scheme": "logit_normal"},
    {**SD35, "sd35.weighting_scheme": "mode"},
    {"optimizer.scheduler": "piecewise_constant"},
    {"training.cache_latents": False},
    {"folders.logging": "/logs", "logging.log_with": "tensorboard"},
    {"training.max_data_loader_n_workers": 2},
    {"training.cache_text_encoder_outputs": True, "optimizer.text_encoder_lr": 0.0},
    {"network.type": "locon"},
    {"network.type": "lokr"},
    {"network.type": "loha"},
    {"network.type": "dylora", "network.rank": 8},
    {"training.multires_noise_iterations": 6},
    {"optimizer.scheduler": "constant"},
    {"training.max_train_epochs": None, "training.max_train_steps": 900},
    {"logging.log_with": "wandb"},
    {"training.loss_type": "huber"},
    {"training.cache_latents": True, "training.cache_latents_to_disk": True},
    {"optimizer.scheduler_type": "torch.optim.lr_scheduler.ExponentialLR"},
    {"hardware.num_processes": 2},
    {"training.mixed_precision": "fp16"},  # full_fp16 needs it
    {"training.gradient_checkpointing": True},  # cpu_offload_checkpointing offloads what it keeps
]


def base_values(tmp_path) -> dict:
    images, reg = tmp_path / "data" / "img", tmp_path / "data" / "reg"
    (images / "10_cat").mkdir(parents=True)
    (reg / "1_animal").mkdir(parents=True)
    return {"model.quick_pick": "custom", "model.path": "/models/sd15.safetensors", "model.family": "sd1",
            "folders.images": str(images), "folders.regularization": str(reg), "folders.output": str(tmp_path / "out"),
            "optimizer.unet_lr": 2e-4, "optimizer.text_encoder_lr": 5e-5, "training.mixed_precision": "bf16"}


def other_value(setting, values):
    """A valid value different from the setting's default in this run."""
    if setting.key in FORMATTED:
        return FORMATTED[setting.key]
    default = setting.default_for(values)
    if setting.kind == "bool":
        return not default
    if setting.kind == "choice":
        return next(c for c in setting.choices if c not in (default, "auto", "custom"))
    if setting.kind in ("int", "float"):
        low = setting.minimum if setting.minimum is not None else 0
        high = setting.maximum if setting.maximum is not None else 1e6
        start = default if default is not None else low
        for candidate in (start * 2, start + 1, start + 0.5, (low + high) / 2, high, low + 1):
            candidate = int(candidate) if setting.kind == "int" else float(candidate)
            inside = (low < candidate if setting.min_exclusive else low <= candidate) and (
                candidate < high if setting.max_exclusive else candidate <= high)
            if candidate != default and inside and not (setting.optional and candidate == 0):
                return candidate
    if setting.kind == "path":
        return f"/data/{setting.name}"
    if setting.kind == "str":
        return f"text for {setting.name}"
    raise AssertionError(f"give {setting.key} a value in FORMATTED")


def runs_for_every_kohya_setting(tmp_path):
    """One (key, run) per Kohya-mapped setting: the base run in the first context where the setting
    applies, with that setting changed. A setting that fits no context fails the test."""
    base = base_values(tmp_path)
    runs, unplaced = [], []
    for setting in SETTINGS:
        if not setting.kohya or setting.key in FOLDED:
            continue
        for context in CONTEXTS:
            values = {**base, **context}
            values[setting.key] = other_value(setting, RunConfig(values).values)
            typed, problems = validate_values(values)
            applies = setting.applies(typed) if setting.applies else None
            if not applies and not [p for p in problems if p.is_error]:
                runs.append((setting.key, RunConfig(values)))
                break
        else:
            unplaced.append(setting.key)
    assert not unplaced, f"add a context in which these settings apply: {unplaced}"
    return runs


def same_run(imported: RunConfig, original: RunConfig, left_out: list[str]) -> dict:
    """The Kohya-mapped settings (and the family) whose values differ; the run's epochs are compared
    as Kohya folds them. A setting that does nothing in the original run (its `applies` says why)
    may come back at another value, and one the export listed as not written is not compared."""
    want, got = dict(original.values), dict(imported.values)
    want["training.epochs"], want["training.max_train_epochs"] = original.epochs, None
    named = {line.split(":")[0] for line in left_out}
    keys = [s.key for s in SETTINGS if s.kohya and not (s.applies and s.applies(want)) and s.key not in named]
    return {key: (want[key], got.get(key)) for key in keys + ["model.family"] if want[key] != got.get(key)}


def test_every_kohya_setting_survives_the_gui_json(tmp_path):
    runs = runs_for_every_kohya_setting(tmp_path)
    assert len(runs) >= len([s for s in SETTINGS if s.kohya]) - len(FOLDED)
    failures = {}
    for key, config in runs:
        export = export_gui(config)
        data = json.loads(json.dumps(export.data))  # as written to the file
        if diff := same_run(convert_kohya_settings(data).config, config, export.notes):
            failures[key] = diff
    assert not failures, "\n".join(f"{key}: {diff}" for key, diff in failures.items())


def test_every_kohya_setting_survives_sd_scripts_toml_and_command(tmp_path):
    runs = runs_for_every_kohya_setting(tmp_path)
    assert len(runs) >= len([s for s in SETTINGS if s.kohya]) - len(FOLDED)
    failures = {}
    for number, (key, config) in enumerate(runs):
        folder = tmp_path / f"toml{number}"
        folder.mkdir()
        export = export_toml(config, folder)
        for name, text in export.files.items():
            (folder / name).write_text(text)
        if diff := same_run(import_kohya_file(folder / COMMAND_NAME).config, config, export.left_out):
            failures[key] = diff
    assert not failures, "\n".join(f"{key}: {diff}" for key, diff in failures.items())


@pytest.mark.parametrize("pick", ["sd15", "sdxl-base", "flux1-dev", "sd21-768-v"])
def test_a_quick_pick_comes_back_as_itself(tmp_path, pick):
    config = RunConfig({**base_values(tmp_path), "model.quick_pick": pick, "model.path": None, "model.family": None})
    config = RunConfig({k: v for k, v in config.values.items() if k not in ("model.family", "model.path")})
    imported = convert_kohya_settings(export_gui(config).data).config
    assert (imported.model.quick_pick, imported.model.family) == (pick, config.model.family)


def test_export_cli_writes_gui_json_and_toml_and_never_replaces_without_force(tmp_path, capsys):
    run = tmp_path / "run.yaml"
    from engine.config.yamlio import dump_run_yaml

    config = RunConfig({**base_values(tmp_path), "network.type": "loha", "hardware.vram_gb": 12.0,
                        "training.mixed_precision": "auto"})
    run.write_text(dump_run_yaml(config))
    out = tmp_path / "kohya.json"
    assert main(["export-kohya", str(run), "-o", str(out)]) == 0
    text = capsys.readouterr()
    assert json.loads(out.read_text())["LoRA_type"] == "LyCORIS/LoHa"
    # the settings Kohya has no place for are named, with what was done
    assert "not exported: hardware.vram_gb" in text.err and "not exported: training.mixed_precision" in text.err
    out.write_text("{}")
    assert main(["export-kohya", str(run), "-o", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err and out.read_text() == "{}"
    assert main(["export-kohya", str(run), "-o", str(out), "--force"]) == 0
    folder = tmp_path / "sd"
    assert main(["export-kohya", str(run), "--toml", str(folder)]) == 0
    assert "run it in the sd-scripts folder: accelerate launch" in capsys.readouterr().out
    assert {p.name for p in folder.iterdir()} == {"config.toml", "dataset.toml", "train.sh"}
    assert "loha" in (folder / "config.toml").read_text() and "10_cat" in (folder / "dataset.toml").read_text()
    before = (folder / "config.toml").read_text()
    (folder / "config.toml").write_text("# mine\n")
    assert main(["export-kohya", str(run), "--toml", str(folder)]) == 1
    assert (folder / "config.toml").read_text() == "# mine\n" and before
    assert main(["export-kohya", str(run), "--toml", str(folder), "--force"]) == 0
    assert main(["import-kohya", str(folder / "train.sh"), "-o", str(tmp_path / "back.yaml")]) == 0
    assert "read " in capsys.readouterr().out


def test_offset_and_multires_noise_together_survive_sd_scripts_and_the_gui_says_what_it_loses(tmp_path):
    config = RunConfig({**base_values(tmp_path), "training.noise_offset": 0.05, "training.multires_noise_iterations": 6})
    gui = export_gui(config)
    assert any(line.startswith("training.noise_offset:") for line in gui.notes)
    export = export_toml(config, tmp_path)
    for name, text in export.files.items():
        (tmp_path / name).write_text(text)
    assert not same_run(import_kohya_file(tmp_path / COMMAND_NAME).config, config, export.left_out)
    assert not any(line.startswith("training.noise_offset:") for line in export.left_out)
