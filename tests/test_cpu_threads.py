"""training.cpu_threads_per_process: explicit counts are used as given; left empty, a CPU run takes
the idle CPUs of this process (a busy machine gets fewer threads); the old name still loads."""

from __future__ import annotations

import pytest

from engine.train.threads import GPU_THREADS, busy_cpus, choose_threads, usable_cpus
from tests.helpers import load_text


@pytest.mark.parametrize("cpus, busy, expected", [
    (2, 0.1, 2),   # a quiet 2-core machine: both cores
    (2, 2.0, 1),   # two other CPU-bound jobs: one thread (two made steps 8-35x slower)
    (2, 7.5, 1),   # never fewer than one
    (16, 3.4, 13),
    (4, 1.6, 2),
])
def test_automatic_threads_are_the_idle_cpus(cpus, busy, expected):
    choice = choose_threads(None, on_gpu=False, cpus=cpus, busy=busy)
    assert choice.threads == expected
    assert f"{expected} of {cpus} CPUs idle" in choice.reason


def test_a_gpu_run_keeps_kohyas_two_threads_at_most_and_a_set_count_wins():
    assert choose_threads(None, on_gpu=True, cpus=16, busy=0.0).threads == GPU_THREADS
    assert choose_threads(None, on_gpu=True, cpus=2, busy=2.0).threads == 1
    assert choose_threads(3, on_gpu=False, cpus=2, busy=5.0).threads == 3


def test_the_machine_is_read_from_affinity_and_load():
    import os

    assert usable_cpus() == len(os.sched_getaffinity(0))
    assert busy_cpus() >= os.getloadavg()[0] - 1e-9


def test_the_old_name_is_read_as_the_new_one_with_a_note(tmp_path):
    head = f"folders:\n  images: {tmp_path}\n"
    cfg, warnings = load_text(tmp_path, head + "training:\n  cpu_threads_per_core: 3\n")
    assert cfg.training.cpu_threads_per_process == 3
    (note,) = [w for w in warnings if w.field == "training.cpu_threads_per_core"]
    assert not note.is_error and "old name of training.cpu_threads_per_process" in note.message
    cfg, warnings = load_text(tmp_path, head + "training:\n  cpu_threads_per_core: 3\n  cpu_threads_per_process: 1\n")
    assert cfg.training.cpu_threads_per_process == 1
    assert any("also sets" in w.message for w in warnings)


def test_saved_files_use_the_new_name_and_empty_is_the_default(tmp_path):
    from engine.config import RunConfig, dump_run_yaml

    text = dump_run_yaml(RunConfig.from_values({}))
    assert "cpu_threads_per_process:" in text and "cpu_threads_per_core" not in text
    assert RunConfig.from_values({}).training.cpu_threads_per_process is None


@pytest.mark.slow
@pytest.mark.parametrize("requested", [None, 1])
def test_the_run_uses_and_logs_its_thread_count(tmp_path, requested):
    import torch

    from engine.dataset.synthetic import make_synthetic_dataset
    from tests.helpers import small_run

    images, _ = make_synthetic_dataset(tmp_path / "data", seed=0, size=64)
    before = torch.get_num_threads()
    try:
        _, events = small_run(tmp_path, "builtin-tiny-sd1", folders__images=str(images),
                              training__cpu_threads_per_process=requested, training__max_train_steps=2)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    (log,) = [e for e in events if e.get("type") == "log" and "cpu_threads" in e]
    expected = choose_threads(requested, on_gpu=False).threads
    assert log["cpu_threads"] == used
    assert abs(used - expected) <= 1  # the load may move between the two looks
    if requested == 1:
        assert used == 1 and "set in the run file" in log["message"]
