"""The dataset doctor: what will spoil a LoRA (or stop its training), found before the run.

Torch-free and Textual-free: `tui-lora doctor` and the wizard's Folders screen both call
`run_doctor`. Each check is its own module (layout, image_checks, duplicates, caption_checks,
balance; blocking holds what stops training); `findings` is the report model; `cache` keeps
image facts between runs. docs/doctor.md documents every finding code and the JSON shape.
"""

from .findings import DoctorReport, Finding
from .run import DoctorOptions, run_doctor
from .text import format_report

__all__ = ["DoctorOptions", "DoctorReport", "Finding", "format_report", "run_doctor"]
