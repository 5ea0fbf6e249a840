"""Failures with a way out: out of memory, divergence, a full disk, missing packages.

Each ends as an `error` event with advice and a `failed` run, earlier files untouched, and never
as an exception escaping the engine. Hardware faults are raised where the hardware would raise
them (the UNet's forward, the optimizer's kernel, the disk itself).
"""

from __future__ import annotations

import errno
import importlib.abc
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from engine.config import save_run_file
from engine.events import read_events
from engine.problems import ProblemError
from engine.train.control import RunControl
from engine.train.entry import run_config

pytestmark = pytest.mark.slow


def train(cfg, on_event=None):
    events: list[dict] = []

    def record(event):
        events.append(event)
        if on_event:
            on_event(event)

    return run_config(cfg, on_event=record, control=RunControl()), events


def kinds(events, kind):
    return [e for e in events if e["type"] == kind]


# -- out of memory ---------------------------------------------------------------------------------

def test_out_of_gpu_memory_gives_advice_and_keeps_the_epoch_file(tiny_config, tmp_path, monkeypatch):
    from diffusers import UNet2DConditionModel

    real_forward = UNet2DConditionModel.forward
    calls = []

    def forward(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the first step of the second epoch
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "forward", forward)
    saved = {}

    def keep_bytes(event):
        if event["type"] == "checkpoint":
            saved[event["path"]] = Path(event["path"]).read_bytes()

    cfg = tiny_config(training__epochs=2, training__save_every_n_epochs=1, training__cache_latents=False)
    result, events = train(cfg, keep_bytes)
    assert (result.status, result.exit_code) == ("failed", 1)
    (failure,) = kinds(events, "error")
    assert failure["message"] == "the GPU ran out of memory"
    width, height = cfg.training.max_resolution
    for advice in ("training.batch_size (now 2)", f"training.max_resolution (now {width}x{height})",
                   "training.gradient_checkpointing", "AdamW8bit", "training.cache_latents", "last saved LoRA is intact"):
        assert advice in failure["hint"]
    assert Path(failure["traceback_path"]).read_text().count("OutOfMemoryError") >= 1
    (epoch_file,) = saved
    assert Path(epoch_file).name == "test_lora-000001.safetensors"
    assert Path(epoch_file).read_bytes() == saved[epoch_file]
    assert not (tmp_path / "out" / "test_lora.safetensors").exists()
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "failed"


def test_memory_advice_leaves_out_what_is_already_chosen(tiny_config):
    from engine.train.entry import memory_advice

    advice = memory_advice(tiny_config(training__batch_size=1, training__gradient_checkpointing=True,
                                       optimizer__name="AdamW8bit", training__cache_latents=True))
    assert "batch_size" not in advice and "gradient_checkpointing" not in advice and "8-bit" not in advice
    assert "training.max_resolution" in advice


# -- divergence ------------------------------------------------------------------------------------

def test_nan_loss_stops_with_advice_and_saves_nothing(tiny_config, tmp_path):
    cfg = tiny_config(training__batch_size=1, optimizer__learning_rate=1e6, optimizer__text_encoder_lr=1e6)
    result, events = train(cfg)
    assert (result.status, result.exit_code) == ("failed", 1)
    assert "the loss became nan at step 2" in result.message and "fp16" in result.hint
    assert [e["step"] for e in kinds(events, "step")] == [1]  # the NaN step is never reported as progress
    assert not kinds(events, "checkpoint")
    assert not list((tmp_path / "out").glob("*.safetensors"))


def test_infinite_weights_are_never_saved(tiny_config, tmp_path, monkeypatch):
    real_step = torch.optim.AdamW.step
    steps = []

    def overflowing_step(self, *args, **kwargs):  # the last update overflows; its loss was still finite
        out = real_step(self, *args, **kwargs)
        steps.append(1)
        if len(steps) == 2:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", overflowing_step)
    result, events = train(tiny_config())  # two steps in all
    assert [e["step"] for e in kinds(events, "step")] == [1, 2]
    assert result.status == "failed" and "infinite or NaN by step 2" in result.message
    assert "fp16" in result.hint and not kinds(events, "checkpoint")
    assert not list((tmp_path / "out").glob("*.safetensors"))


# -- a full disk -------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A real, small file system (tmpfs); skipped where mounting is not permitted."""
    mounted = []

    def make(size: str) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def fill(folder: Path, leave: int = 0, *, name: str = "filler", block: bytes = b"\0" * 65536) -> None:
    """Take every free byte of the file system, then give back `leave` bytes."""
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)


def test_full_disk_keeps_the_earlier_lora_file_and_leaves_no_partial(small_disk):
    from engine.lorafile.io import save_lora_file

    disk = small_disk("2m")
    target = disk / "lora.safetensors"

    def weights(value):
        return {"unet": {"down_blocks.0.attentions.0.proj_in": {
            "lora_down.weight": torch.full((8, 20000), value), "lora_up.weight": torch.full((32, 8), value),
            "alpha": torch.tensor(4.0)}}}

    save_lora_file(target, weights(1.0), family="sd1", metadata={}, save_dtype=torch.float32)
    good = target.read_bytes()
    fill(disk)
    with pytest.raises(ProblemError) as info:
        save_lora_file(target, weights(2.0), family="sd1", metadata={}, save_dtype=torch.float32)
    problem = info.value.errors[0]
    assert problem.field == str(target) and "disk is full" in problem.message and "unchanged" in problem.message
    assert target.read_bytes() == good
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "lora.safetensors"]


@pytest.mark.parametrize("leave, save_state", [(0, False), (16384, False), (16384, True)],
                         ids=["no-room-at-all", "room-for-events-only", "state-save-refused"])
def test_disk_filling_up_mid_run_fails_cleanly_and_keeps_the_epoch_file(tiny_config, small_disk, leave, save_state):
    disk = small_disk("48m")
    saved = {}

    def fill_after_first_save(event):
        if event["type"] == "checkpoint" and not saved:
            saved[event["path"]] = Path(event["path"]).read_bytes()
            fill(disk, leave)
            if not leave:  # also the event file's last page: its next line finds no room either
                (events_file,) = (disk / "out").glob(".runs/*/events.jsonl")
                fill(events_file.parent, name=events_file.name, block=b"\n")

    cfg = tiny_config(folders__output=str(disk / "out"), training__epochs=2, training__save_every_n_epochs=1,
                      training__save_state=save_state)
    result, events = train(cfg, fill_after_first_save)  # returns: no exception escapes
    assert (result.status, result.exit_code) == ("failed", 1)
    assert "the disk is full" in result.message and "free" in result.hint
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "failed"
    ((path, good),) = saved.items()
    assert Path(path).read_bytes() == good
    out = disk / "out"
    assert not [p for p in out.iterdir() if p.name.endswith(".partial") or p.name.startswith(".test_lora")]
    assert not (out / "test_lora.safetensors").exists()
    if save_state:  # the LoRA was written; its state found no room, and no half folder is left
        assert "resumable state could not be saved" in result.message
        assert not list(out.glob("*-state*"))
    else:  # the final save found no room: the trained weights went to the state folder, named in the message
        rescued = result.outputs[-1]
        assert rescued.parent.parent == Path(os.environ["XDG_STATE_HOME"]) / "tui-lora" / "rescued"
        if leave:  # the final save was refused
            assert f"{out / 'test_lora.safetensors'} could not be written" in result.message
        else:  # an event found no room first
            assert result.message.startswith("the disk is full (") and str(out) in result.message
        assert f"saved to {rescued}" in result.message and f"mv '{rescued}'" in result.hint
        with safe_open(str(rescued), "pt") as handle:
            assert int(handle.metadata()["ss_steps"]) >= 1 and list(handle.keys())
        if leave:  # the event file had room for the end: it names the rescued file too
            written = read_events(result.run.events)
            assert written[-1]["status"] == "failed" and str(rescued) in written[-2]["message"]


# -- packages and hardware ---------------------------------------------------------------------------

@pytest.fixture
def run_file(tiny_config, tmp_path):
    def make(**overrides) -> str:
        return str(save_run_file(tiny_config(**overrides), tmp_path / "run.yaml", overwrite=True))

    return make


def assert_refused_before_anything(tmp_path, capsys, *words):
    err = capsys.readouterr().err
    assert "nothing was started" in err and "Traceback" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "out").exists()
    # The run registered before the slow checks (so `monitor` finds it at once) and took it back.
    from engine.runs import list_runs

    assert list_runs() == []


@pytest.mark.parametrize("settings, package", [
    ({"optimizer__name": "AdamW8bit"}, "bitsandbytes"),
    ({"optimizer__name": "DAdaptation", "optimizer__learning_rate": 1.0}, "dadaptation"),
    ({"optimizer__name": "Prodigy", "optimizer__learning_rate": 1.0}, "prodigyopt"),
])
def test_missing_optimizer_package_is_refused_before_the_model_loads(run_file, tmp_path, capsys, monkeypatch,
                                                                    settings, package):
    from tui_lora.cli import main

    path = run_file(**settings)
    monkeypatch.setitem(sys.modules, package, None)  # what an absent package looks like to `import`
    assert main(["train", path]) == 2
    assert_refused_before_anything(tmp_path, capsys, "optimizer.name", f"'{package}', which is not installed")


def test_missing_wandb_is_refused_before_the_model_loads(run_file, tmp_path, capsys, monkeypatch):
    from tui_lora.cli import main

    path = run_file(logging__log_with="wandb", folders__logging=str(tmp_path / "logs"))
    monkeypatch.setitem(sys.modules, "wandb", None)
    assert main(["train", path]) == 2
    assert_refused_before_anything(tmp_path, capsys, "logging.log_with", "wandb is not installed")


class _BrokenBitsandbytes(importlib.abc.MetaPathFinder):
    """Imports of bitsandbytes fail the way a build for another CUDA version does."""

    def find_spec(self, name, path=None, target=None):
        if name == "bitsandbytes" or name.startswith("bitsandbytes."):
            raise RuntimeError("CUDA Setup failed despite GPU being available: libbitsandbytes_cuda118.so not found")


def test_bitsandbytes_that_fails_to_import_is_refused_before_the_model_loads(run_file, tmp_path, capsys,
                                                                              monkeypatch):
    from tui_lora.cli import main

    path = run_file(optimizer__name="AdamW8bit")
    for name in [n for n in sys.modules if n == "bitsandbytes" or n.startswith("bitsandbytes.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_BrokenBitsandbytes(), *sys.meta_path])
    assert main(["train", path]) == 2
    assert_refused_before_anything(tmp_path, capsys, "optimizer.name", "failed to import", "libbitsandbytes_cuda118")


def test_8bit_optimizer_whose_kernels_cannot_run_here_is_refused_before_the_model_loads(run_file, tmp_path, capsys,
                                                                                       monkeypatch):
    import bitsandbytes.functional

    from tui_lora.cli import main

    def no_kernel(*args, **kwargs):
        raise NotImplementedError("Could not run 'bitsandbytes::optimizer_update_8bit_blockwise' with arguments "
                                  "from the 'CPU' backend")

    monkeypatch.setattr(bitsandbytes.functional, "optimizer_update_8bit_blockwise", no_kernel)
    path = run_file(optimizer__name="AdamW8bit")
    assert main(["train", path]) == 2
    assert_refused_before_anything(tmp_path, capsys, "optimizer.name", "AdamW8bit cannot run on this machine (cpu)",
                                   "choose AdamW or Adafactor")


def test_working_8bit_optimizer_passes_the_hardware_check(tiny_config):
    from engine.train.entry import optimizer_hardware_problems

    assert optimizer_hardware_problems(tiny_config(optimizer__name="AdamW8bit")) == []
    assert optimizer_hardware_problems(tiny_config(optimizer__name="AdamW")) == []
