"""`validate` refuses a run whose model files are missing or unreadable, and an optimizer argument
the optimizer would reject, with the field named and no traceback; the torch-free table of
optimizer signatures agrees with the installed classes, so validate and preflight judge alike."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.config import save_run_file
from engine.config.optimizer_args import KNOWN_ARGUMENTS, optimizer_argument_problems
from engine.optim.extra_args import OPTIMIZER_SPECS, accepted_arguments, check_optimizer_args
from engine.train.model_files import model_file_problems
from tui_lora.cli import main


def _validate(run_file, capsys) -> tuple[int, str, str]:
    code = main(["validate", str(run_file)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _error_lines(err: str, field: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"error: {field}:")]


@pytest.mark.parametrize("path", ["/root/models/v1-5-pruned.safetensors", "./nowhere/model.ckpt"])
def test_validate_fails_on_a_missing_base_model_file(tiny_config, tmp_path, capsys, path):
    cfg = tiny_config(model__quick_pick="custom", model__path=path, model__family="sd1")
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    code, _, err = _validate(run_file, capsys)
    assert code == 2
    (line,) = _error_lines(err, "model.path")
    assert path in line and "does not exist" in line and "Traceback" not in err


def test_validate_fails_on_an_empty_or_unreadable_base_model(tiny_config, tmp_path, capsys):
    empty = tmp_path / "half.safetensors"
    empty.write_bytes(b"")
    run_file = save_run_file(tiny_config(model__quick_pick="custom", model__path=str(empty), model__family="sd1"),
                             tmp_path / "run.yaml")
    code, _, err = _validate(run_file, capsys)
    assert code == 2 and "is empty (0 bytes)" in _error_lines(err, "model.path")[0]
    if os.geteuid() != 0:  # root reads anything
        empty.write_bytes(b"x" * 100)
        empty.chmod(0)
        assert "permission denied" in " ".join(_error_lines(_validate(run_file, capsys)[2], "model.path"))


def test_flux_companion_files_are_checked_by_their_setting(tmp_path):
    transformer = tmp_path / "flux1-dev.safetensors"
    transformer.write_bytes(b"x" * 64)
    clip = tmp_path / "clip_l.safetensors"
    clip.write_bytes(b"x" * 64)
    values = {"model.path": str(transformer), "model.family": "flux1", "model.clip_l": str(clip),
              "model.t5xxl": str(tmp_path / "t5xxl_fp16.safetensors"), "model.ae": str(tmp_path)}
    problems = {p.field: p.message for p in model_file_problems(values)}
    assert set(problems) == {"model.t5xxl", "model.ae"}
    assert "does not exist" in problems["model.t5xxl"] and "is a folder, not a file" in problems["model.ae"]
    # for a diffusers folder the companions are not used, so their paths are not judged
    folder_model = {**values, "model.path": str(tmp_path)}
    assert [p.field for p in model_file_problems(folder_model)] == []


def test_hub_ids_and_quick_picks_are_not_files():
    for path in ("stable-diffusion-v1-5/stable-diffusion-v1-5", "builtin-tiny-sd1", ""):
        assert model_file_problems({"model.path": path}) == []


def test_validate_checks_files_without_importing_torch(tiny_config, tmp_path):
    cfg = tiny_config(model__quick_pick="custom", model__path=str(tmp_path / "gone.safetensors"), model__family="sd1")
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    code = ("import sys; from tui_lora.cli import main; rc = main(['validate', sys.argv[1]]); "
            "print('torch loaded:', 'torch' in sys.modules); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(run_file)], capture_output=True, text=True)
    assert done.returncode == 2 and "torch loaded: False" in done.stdout
    assert "error: model.path:" in done.stderr and "Traceback" not in done.stderr


def test_validate_refuses_an_optimizer_argument_the_optimizer_would_reject(tiny_config, tmp_path, capsys):
    # Kohya's launcher strips these quotes; kept, they make the betas text and Lion8bit refuses it
    run_file = tmp_path / "run.yaml"
    save_run_file(tiny_config(), run_file)
    text = run_file.read_text().replace("extra_args: []", "extra_args: [\"betas='0.95,0.98'\", weight_decay=0.01]")
    text = text.replace("name: AdamW\n", "name: Lion8bit\n")
    run_file.write_text(text)
    code, _, err = _validate(run_file, capsys)
    assert code == 2
    (line,) = _error_lines(err, "optimizer.extra_args")
    assert "needs 2 numbers" in line and "without the quotes: betas=0.95,0.98" in line
    run_file.write_text(text.replace("betas='0.95,0.98'", "betass=0.9,0.99"))
    code, _, err = _validate(run_file, capsys)
    assert code == 2 and "did you mean 'betas'?" in _error_lines(err, "optimizer.extra_args")[0]


@pytest.mark.parametrize("texts", [["betas='0.95,0.98'"], ["momentum=fast"], ["nesterov=false"], ["lr=1"],
                                   ["weight_decay=0.01", "eps=1e-8"], ["warmup_init=true"]])
@pytest.mark.parametrize("name", ["AdamW", "Lion8bit", "SGDNesterov", "Adafactor", "Prodigy"])
def test_validate_and_preflight_judge_optimizer_arguments_alike(name, texts):
    torch_free = [(p.field, p.message) for p in optimizer_argument_problems(name, texts, scheduler="cosine")]
    installed = [(p.field, p.message) for p in check_optimizer_args(name, texts, scheduler="cosine")]
    assert torch_free == installed


@pytest.mark.parametrize("name", sorted(OPTIMIZER_SPECS))
def test_the_signature_table_matches_the_installed_optimizers(name):
    try:
        accepted = accepted_arguments(name)
    except Exception:  # noqa: BLE001 - an optional package not installed here: nothing to compare
        pytest.skip(f"{name}'s package is not installed")
    assert KNOWN_ARGUMENTS[name] == accepted, f"update KNOWN_ARGUMENTS[{name!r}] in engine/config/optimizer_args.py"
    assert set(KNOWN_ARGUMENTS) == set(OPTIMIZER_SPECS)
