"""`tui-lora doctor [DIR] [--config run.yaml]`: check a dataset for what would spoil a LoRA or stop
its training. Plain text, or `--json` (shape in docs/doctor.md). Exit 1 when training would refuse
to start, 0 otherwise, 2 when the run file itself cannot be read. No torch."""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import TextIO

from engine.config import RunConfig, load_run_file
from engine.dataset.doctor import DoctorOptions, format_report, run_doctor
from engine.problems import ProblemError


class ProgressBar:
    """`checking images [#####.....] 1200/5000` on a terminal, redrawn at most 10 times a second;
    nothing at all when the stream is not a terminal (logs and pipes stay clean)."""

    def __init__(self, stream: TextIO, width: int = 30):
        self.stream = stream
        self.enabled = stream.isatty()
        self.width = width
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or total == 0 or (done < total and now - self._last < 0.1):
            return
        self._last = now
        filled = self.width * done // total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\rchecking images [{bar}] {done}/{total}")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()


def doctor_command(directory: str | None, config: str | None = None, *, as_json: bool = False,
                   regularization: str | None = None, caption_extension: str | None = None,
                   use_cache: bool = True) -> int:
    if config:
        try:
            cfg, _ = load_run_file(config)
        except ProblemError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(f"{config}: not valid, so the dataset was not checked ({len(exc.errors)} error(s))", file=sys.stderr)
            return 2
    elif directory:
        cfg = RunConfig.from_values({"folders.images": directory})
    else:
        print("tui-lora doctor: give a dataset folder or --config run.yaml", file=sys.stderr)
        return 2
    options = DoctorOptions.from_config(cfg, config_path=config, images_dir=directory, find_tokenizer=bool(config),
                                        use_cache=use_cache)
    if regularization is not None:
        options.regularization_dir = regularization or None
    if caption_extension:
        options.caption_extension = caption_extension
    bar = ProgressBar(sys.stderr)
    try:
        report = run_doctor(options, progress=bar)
    finally:
        bar.close()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        width = max(60, min(shutil.get_terminal_size((80, 24)).columns, 100))
        print(format_report(report, width))
    return 1 if report.blocks_training else 0
