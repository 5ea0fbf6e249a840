"""Layer rules that keep the app light and the engine usable without a UI (see docs/design.md).

- The engine never imports `tui_lora` or `textual`, not even lazily inside a function: checked
  on the source, so a rarely taken code path cannot hide a violation.
- The light engine modules the wizard and `validate` use import no training library at import
  time, and neither does the wizard's start-up path (`tui_lora.app`, `tui_lora.cli`): checked in
  a fresh interpreter, where `sys.modules` shows everything an import pulled in.
- No import cycles among our modules (scripts/import_cycles.py, which counts imports inside
  functions too). Which way imports may point is import-linter's job (`lint-imports`, contracts in
  pyproject.toml, run by .ci/run).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "transformers", "peft", "accelerate", "bitsandbytes")
UI = ("tui_lora", "textual")
LIGHT_ENGINE = ("engine.config", "engine.events", "engine.runs", "engine.plan", "engine.kohya.sources", "engine.kohya.export_toml")
WIZARD_START = ("tui_lora.app", "tui_lora.cli")

# The cycles issue 22 found outside the families, removed by moving the shared piece down: none of
# these modules may be in a cycle again (and since the families moved into their packages, no module is).
UNTANGLED = ("tui_lora.dashboard", "tui_lora.dashboard.graphics", "tui_lora.dashboard.panels",
             "tui_lora.dashboard.screen", "engine.networks.inject", "engine.networks.dylora",
             "engine.networks.regularizers", "engine.vram", "engine.vram.estimate", "engine.vram.fixes",
             "engine.config.settings_scheduler_class", "engine.optim.custom_schedule", "engine.train.entry",
             "engine.train.reservation")


def _cycle_finder():
    """scripts/import_cycles.py, loaded from its file (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "scripts" / "import_cycles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def imported_names(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every import statement in the source, wherever it sits."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def ui_imports(package: Path) -> list[str]:
    return [f"{path.relative_to(package.parent)}:{line} imports {name}"
            for path in sorted(package.rglob("*.py"))
            for line, name in imported_names(path.read_text(encoding="utf-8")) if name in UI]


def heavy_modules_after_import(module: str) -> list[str]:
    """The training libraries in `sys.modules` after importing `module` in a fresh interpreter."""
    code = (f"import importlib, json, sys; importlib.import_module({module!r}); "
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_engine_never_imports_the_ui():
    assert ui_imports(ROOT / "engine") == [], "the engine must work without the app: move the shared code into engine/"


def test_ui_import_check_finds_a_lazy_import_inside_a_function(tmp_path):
    package = tmp_path / "engine"
    package.mkdir()
    (package / "ok.py").write_text("import json\nfrom .config import SETTINGS\n")
    (package / "bad.py").write_text("def show():\n    from textual.app import App\n    import tui_lora.cli\n")
    assert ui_imports(package) == ["engine/bad.py:2 imports textual", "engine/bad.py:3 imports tui_lora"]


@pytest.mark.parametrize("module", LIGHT_ENGINE + WIZARD_START)
def test_light_module_imports_no_training_library(module):
    assert heavy_modules_after_import(module) == [], f"importing {module} must not load a training library; import it lazily"


def test_heavy_import_check_sees_torch():
    assert "torch" in heavy_modules_after_import("engine.train.memory")  # imports torch at the top


def test_no_import_cycles():
    finder = _cycle_finder()
    cycles = finder.find_cycles(finder.import_graph(ROOT, ("engine", "tui_lora")))
    in_a_cycle = {module for group in cycles for module in group}
    assert in_a_cycle.isdisjoint(UNTANGLED), [group for group in cycles if set(UNTANGLED).intersection(group)]
    assert cycles == [], ("import cycle(s): move the piece both sides need down into a lower module "
                          f"(not a function-level import): {cycles}")


def test_cycle_finder_sees_lazy_imports_and_imports_through_a_package(tmp_path):
    finder = _cycle_finder()
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .facade import run\n")
    (package / "facade.py").write_text("def run():\n    from .worker import work  # lazy: still an import\n")
    (package / "worker.py").write_text("from .facade import run\n")
    (package / "sub" / "__init__.py").write_text("from .b import thing\n")
    (package / "sub" / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("from . import a  # reads the package, whose __init__ imports b\n")
    (package / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .checked import C\n")
    (package / "checked.py").write_text("from .typed import TYPE_CHECKING\n")
    cycles = finder.find_cycles(finder.import_graph(tmp_path, ["pkg"]))
    assert cycles == [["pkg.facade", "pkg.worker"], ["pkg.sub", "pkg.sub.b"]]  # not typed/checked

