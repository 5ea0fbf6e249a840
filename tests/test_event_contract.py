"""The event layout is one contract (engine/event_types.py): what a real engine run writes is what
the dashboard reads. The fixture tests/data/events/engine_run.jsonl is recorded from a real tiny
run (`TUI_LORA_RECORD_EVENTS=1 pytest tests/test_event_contract.py` writes it again); only the GPU
figures are faked, at the boundary (torch.cuda and nvidia-ml-py), since the tests run on the CPU."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.event_types import StepFields
from engine.events import read_events
from tui_lora.dashboard.reducer import build_state

RECORDED = Path(__file__).parent / "data" / "events" / "engine_run.jsonl"
GiB = 1024 ** 3


class FakeNvml:
    """nvidia-ml-py as a machine with one GPU at 42 % load would answer."""

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("gpu", index)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=42, memory=10)


def _fake_gpu(monkeypatch):
    import torch

    from engine.train import loop, memory

    monkeypatch.setattr(memory, "pynvml", FakeNvml())
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=None: (20 * GiB, 24 * GiB))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda index=None: 3 * GiB)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda index=None: 4 * GiB)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda index=None: 5 * GiB)
    # the model trains on the CPU; only the probe reads "GPU 0", through the faked calls above
    monkeypatch.setattr(loop, "MemoryProbe", lambda device: memory.MemoryProbe(torch.device("cuda", 0)))


@pytest.mark.slow
def test_a_real_runs_step_events_drive_the_dashboards_gpu_line(tmp_path, monkeypatch):
    from PIL import Image

    from tests.helpers import small_run

    images = tmp_path / "images" / "1_thing"
    images.mkdir(parents=True)
    for index in range(2):
        picture = Image.new("RGB", (64, 64), (40 * index, 90, 200))
        picture.putpixel((index, 3), (255, 255, 255))
        picture.save(images / f"{index}.png")
        (images / f"{index}.txt").write_text("a thing")
    _fake_gpu(monkeypatch)
    result, _ = small_run(tmp_path, "builtin-tiny-sd1", training__max_train_steps=2)
    events = read_events(next((tmp_path / "out" / ".runs").glob("*/events.jsonl")))
    steps = [e for e in events if e["type"] == "step"]
    assert steps and all(e["gpu_util"] == 42 and "gpu_util" not in e["memory"] for e in steps)
    state = build_state(events)
    assert state.memory.gpu_util == 42 and state.memory.device == "cuda" and state.memory.peak == 5 * GiB
    if os.environ.get("TUI_LORA_RECORD_EVENTS"):
        RECORDED.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))
    # the recorded fixture still has the layout the engine writes today
    recorded = [e for e in read_events(RECORDED) if e["type"] == "step"]
    assert set(recorded[0]) == set(steps[0]) and set(recorded[0]["memory"]) == set(steps[0]["memory"])


def test_the_recorded_engine_events_show_the_gpu_load_on_the_dashboard():
    events = read_events(RECORDED)
    assert any(e["type"] == "run_started" for e in events) and any(e["type"] == "run_finished" for e in events)
    state = build_state(events)
    assert state.memory.gpu_util == 42 and state.memory.allocated == 3 * GiB and state.memory.total == 24 * GiB
    assert state.progress.step == state.progress.total_steps == 2


@pytest.mark.parametrize("name", sorted(p.name for p in RECORDED.parent.glob("*.jsonl")))
def test_every_step_event_fixture_keeps_the_contracts_layout(name):
    """A hand-written fixture may not invent its own layout: each step event reads back whole."""
    for event in read_events(RECORDED.parent / name):
        if event["type"] == "step":
            fields = StepFields.parse(event).to_fields()
            assert {k: v for k, v in event.items() if k not in ("type", "time", "seq")} == fields


def test_the_memory_panel_title_shows_the_load():
    import asyncio

    from textual.app import App

    from tui_lora.dashboard.panels import MemoryPanel

    state = build_state(read_events(RECORDED))

    class One(App):
        def compose(self):
            yield MemoryPanel()

    async def check():
        async with One().run_test() as pilot:
            panel = pilot.app.query_one(MemoryPanel)
            panel.show(state)
            await pilot.pause()
            assert "GPU 42%" in str(panel.border_title)

    asyncio.run(check())
