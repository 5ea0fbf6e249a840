"""`tui-lora doctor`: balance numbers, the JSON shape, exit codes, the cache and the progress bar."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from engine.dataset.doctor import DoctorOptions, run_doctor
from tests.doctor_support import concept, doctor, only
from tui_lora.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_balance_gives_each_concepts_share_and_the_step_counts(tmp_path):
    root = tmp_path / "img"
    concept(root, "5_dog", 2)
    concept(root, "10_cat", 9, seed=1)
    reg = concept(tmp_path / "reg", "1_animal", 4, seed=2)
    report = doctor(root, regularization_dir=reg.parent, batch_size=2, epochs=3)
    shares = {c.name: c for c in report.balance.concepts}
    assert shares["5_dog"].draws == 10 and round(shares["5_dog"].share * 100) == 10
    assert shares["10_cat"].draws == 90
    assert report.balance.reg_images == 4 and report.balance.reg_draws == 100
    # (100 training + 100 regularisation draws) / batch size 2, as the run counts them
    assert report.balance.steps_per_epoch == 100 and report.balance.total_steps == 300
    assert "repeated to 100 draws" in only(report, "balance.reg_repeated").message
    assert "`10_cat` is 90% of each epoch" in only(report, "balance.lopsided").message


def test_json_has_the_documented_shape_and_exit_zero_when_training_can_start(tmp_path, capsys):
    root = tmp_path / "img"
    concept(root, "10_cat", 2, captions="cat")
    (root / "10_cat" / "img1.txt").unlink()
    assert main(["doctor", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"version", "images_dir", "regularization_dir", "config", "blocks_training", "counts",
                         "findings", "balance", "tags", "tokens", "images_checked", "images_from_cache", "seconds"}
    assert data["version"] == 1 and data["blocks_training"] is False
    finding = next(f for f in data["findings"] if f["code"] == "captions.missing")
    assert set(finding) == {"code", "category", "severity", "message", "advice", "paths"}
    assert finding["category"] == "captions" and finding["paths"] == [str(root / "10_cat" / "img1.png")]
    assert data["balance"]["concepts"][0]["name"] == "10_cat"


def test_exit_one_and_the_error_listed_when_training_would_refuse(tmp_path, capsys):
    root = tmp_path / "img"
    folder = concept(root, "10_cat", 1)
    (folder / "broken.png").write_bytes(b"")
    assert main(["doctor", str(root)]) == 1
    out = capsys.readouterr().out
    assert "Errors: training would refuse to start" in out and "broken.png" in out
    assert "→ copy them again from the original, or remove them" in out


def test_config_gives_batch_size_epochs_and_an_invalid_run_file_exits_two(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    concept(tmp_path / "img", "10_cat", 4)
    (tmp_path / "run.yaml").write_text("folders:\n  images: img\ntraining:\n  batch_size: 4\n  epochs: 2\n")
    assert main(["doctor", "--config", "run.yaml", "--json"]) == 0
    balance = json.loads(capsys.readouterr().out)["balance"]
    assert (balance["batch_size"], balance["steps_per_epoch"], balance["total_steps"]) == (4, 10, 20)
    (tmp_path / "bad.yaml").write_text("training:\n  batch_sise: 4\n")
    assert main(["doctor", "--config", "bad.yaml"]) == 2


def test_second_run_reads_the_cache_and_a_changed_file_is_read_again(tmp_path):
    root = tmp_path / "img"
    folder = concept(root, "10_cat", 3)
    options = DoctorOptions(images_dir=root, cache_dir=tmp_path / "cache")
    first = run_doctor(options)
    assert first.cached_count == 0 and first.image_count == 3
    second = run_doctor(options)
    assert second.cached_count == 3
    assert [f.to_dict() for f in second.findings] == [f.to_dict() for f in first.findings]
    (folder / "img0.png").write_bytes(b"")
    third = run_doctor(options)
    assert third.cached_count == 2 and third.by_code("images.zero_byte")


def _doctor_process(root: Path, stderr) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "tui_lora.cli", "doctor", str(root)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr)


def test_progress_bar_on_a_terminal_and_nothing_in_a_pipe(tmp_path):
    root = tmp_path / "img"
    concept(root, "10_cat", 3)
    controller, terminal = pty.openpty()
    process = _doctor_process(root, terminal)
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(60) == 0
    os.close(controller)
    assert b"checking images [" in seen and b"3/3" in seen and b"\x1b[K" in seen
    piped = _doctor_process(root, subprocess.PIPE)
    _, err = piped.communicate(timeout=60)
    assert piped.returncode == 0 and err == b""
