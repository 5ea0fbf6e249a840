"""Several processes: `python -m engine train` with hardware.num_processes 2 relaunches itself through
`accelerate launch --multi_gpu`, which on a CPU runs two gloo processes. Each trains on half of the
batches, only the main process writes events and files, and the LoRA is a normal, valid file."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from engine.events import read_events

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_launch_command_asks_accelerate_for_several_processes_on_a_free_port():
    from engine.runner import launch_command

    command = launch_command("run.yaml", 2, [0, 1], None, "abc")
    assert command[1:4] == ["-m", "accelerate.commands.launch", "--multi_gpu"]
    assert command[command.index("--num_processes") + 1] == "2"
    assert command[command.index("--gpu_ids") + 1] == "0,1"
    port = int(command[command.index("--main_process_port") + 1])
    assert 0 < port < 65536
    assert command[-6:] == ["-m", "engine", "train", "run.yaml", "--run-id", "abc"]


def test_only_the_main_rank_checks_the_output_lock_its_own_run_holds(tiny_config, monkeypatch):
    """Rank 1 starts its checks while rank 0 may already hold the output lock: that lock is the same
    run's, so the other ranks leave the lock and existing-file checks to rank 0."""
    from engine.outputs import OutputLock
    from engine.train.preflight import output_problems

    cfg = tiny_config()
    Path(cfg.folders.output).mkdir(parents=True)
    lock = OutputLock(cfg.folders.output, cfg.folders.output_name)
    lock.acquire("20990101-000000-abcdef")  # rank 0 of this run, already registered
    try:
        (held,) = output_problems(cfg)
        assert "another run (run 20990101-000000-abcdef" in held.message
        assert output_problems(cfg, collisions=False) == []
    finally:
        lock.release()


@pytest.mark.parametrize("rank, checks_collisions", [("0", True), ("1", False)])
def test_run_config_asks_for_the_collision_checks_on_rank_0_only(tiny_config, monkeypatch, rank, checks_collisions):
    from engine.problems import ProblemError
    from engine.train import entry

    asked = {}

    def record_then_refuse(cfg, **kwargs):
        asked.update(kwargs)
        raise ProblemError([])

    monkeypatch.setattr(entry, "output_problems", record_then_refuse)
    monkeypatch.setenv("RANK", rank)
    with pytest.raises(ProblemError):
        entry.run_config(tiny_config())
    assert asked["collisions"] is checks_collisions


def test_two_processes_share_the_batches_and_only_the_main_one_writes(tiny_config, tmp_path):
    from engine.config import dump_run_yaml
    from engine.lorafile.io import read_lora_file

    cfg = tiny_config(hardware__num_processes=2, training__batch_size=1, training__epochs=2)
    run_file = tmp_path / "two.yaml"
    run_file.write_text(dump_run_yaml(cfg))
    # An empty model cache: the built-in model is built once before the ranks start (transformers
    # writes weights on rank 0 only once the process group is up, so a rank cannot build it itself).
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT),
               TUI_LORA_CACHE=str(tmp_path / "empty-cache"))
    done = subprocess.run([sys.executable, "-m", "engine", "train", str(run_file)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "out"
    (run_dir,) = list((out / ".runs").iterdir())  # one registered run, not one per process
    events = read_events(run_dir / "events.jsonl")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["name"] for e in events if e["type"] == "phase"][0] == "loading_model"  # said once, by rank 0
    started = next(e for e in events if e["type"] == "run_started")
    assert started["num_processes"] == 2
    batches = started["dataset"]["batches_per_epoch"]  # small_data at batch size 1: 4
    assert started["steps_per_epoch"] == math.ceil(batches / 2)
    steps = [e for e in events if e["type"] == "step"]
    assert len(steps) == started["total_steps"] == 2 * math.ceil(batches / 2)
    (counts,) = [e["batches_per_process"] for e in events if "batches_per_process" in e]
    assert counts == [batches, batches]  # two epochs, half of each epoch's batches each
    assert [e["type"] for e in events].count("run_finished") == 1 and events[-1]["status"] == "completed"

    lora = out / "test_lora.safetensors"
    assert sorted(p.name for p in out.iterdir()) == [".runs", "test_lora.safetensors", "test_lora.yaml"]
    read = read_lora_file(lora)
    assert read.family_guess == "sd1" and {"unet", "text_encoder"} <= set(read.weights)
    with safe_open(str(lora), "pt") as handle:
        meta = handle.metadata()
        ups = [handle.get_tensor(k) for k in handle.keys() if k.endswith("lora_up.weight")]
    assert meta["ss_num_processes"] == "2" and meta["ss_steps"] == str(len(steps))
    assert ups and all(t.abs().sum() > 0 for t in ups)
    assert done.stdout.count("done:") == 1  # the console reports once, from the main process
