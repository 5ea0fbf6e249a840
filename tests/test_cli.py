"""The command line: validate's plan, runs' status list, and the demo never replacing a LoRA."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.config import save_run_file
from engine.plan import plan_run
from tui_lora.cli import main


def test_validate_prints_the_plan_without_importing_torch(tiny_config, tmp_path):
    cfg = tiny_config(folders__images="synthetic", folders__regularization="synthetic", training__epochs=3)
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    code = ("import sys, time; t = time.time(); from tui_lora.cli import main; rc = main(['validate', sys.argv[1]]); "
            "print('torch loaded:', 'torch' in sys.modules); print('seconds:', time.time() - t); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(run_file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    plan = plan_run(cfg)
    lines = done.stdout.splitlines()
    assert f"steps per epoch: {plan.steps_per_epoch}" in lines
    assert f"total steps: {plan.total_steps}" in lines
    assert plan.total_steps == 3 * plan.steps_per_epoch
    assert "torch loaded: False" in lines
    assert any(line.startswith("alpha / rank: 2 / 4") for line in lines)
    seconds = float(next(line for line in lines if line.startswith("seconds:")).split()[1])
    assert seconds < 5  # about a second on an idle machine; generous for a busy CI


def test_validate_lists_each_error_on_its_own_line_and_exits_2(tmp_path, capsys):
    run_file = tmp_path / "bad.yaml"
    run_file.write_text("folders: {images: x}\nnetwork: {rank: 0, alpha: -1}\n")
    assert main(["validate", str(run_file)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("error: network.rank:") for line in err)
    assert any(line.startswith("error: network.alpha:") for line in err)


def test_runs_lists_status_and_progress(tiny_config, capsys):
    from engine.train.entry import run_config

    assert main(["runs"]) == 0
    assert "no runs yet" in capsys.readouterr().out
    result = run_config(tiny_config(training__epochs=2))
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(result.run.run_id))
    steps = result.trainer.progress.step
    assert steps == result.trainer.plan.total_steps
    assert "completed" in row and f" {steps}/{steps} " in row and "test_lora" in row


@pytest.mark.slow
def test_demo_trains_and_a_second_demo_keeps_the_first_lora(tmp_path, capsys):
    folder = tmp_path / "demo"
    assert main(["demo", "--dir", str(folder)]) == 0
    first = folder / "output" / "demo_lora.safetensors"
    assert first.exists() and "Your LoRA:" in capsys.readouterr().out
    before = first.read_bytes()
    assert main(["demo", "--dir", str(folder)]) == 0
    assert first.read_bytes() == before  # never replaced
    assert (folder / "output" / "demo_lora_v2.safetensors").exists()
