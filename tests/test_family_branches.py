"""The generic engine does not grow new family branches, and the family layers hold (issue 22).

A "family branch" outside `engine/families/` is a comparison with a family name, a test of an old
family flag (`model.v2`, `model.v_parameterization`, `model.sdxl`, `is_sdxl`, `is_flux`) or a
comparison with a denoiser class name. What differs between families belongs behind a hook of
`engine.families.base.ModelFamily`. `KNOWN` lists the files that still have some (each a known gap
in CONTRIBUTING's recipe, or the old flags' own schema and checks) with their count: a new file, or
a higher count, fails; a lower count asks to lower the number here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMES = r"(sd1|sd2|sd2-v|sdxl|flux1)"
DENOISERS = r"(UNet2DConditionModel|FluxTransformer2DModel|SD3Transformer2DModel)"
PATTERNS = [
    re.compile(r"""[=!]=\s*["']""" + NAMES + r"""["']"""),
    re.compile(r"""["']""" + NAMES + r"""["']\s*[=!]="""),
    re.compile(r"""\bin\s*\(\s*["']""" + NAMES + r"""["']"""),
    re.compile(r"\bis_sdxl\b|\bis_flux\b"),
    re.compile(r"\bmodel\.(v2|v_parameterization|sdxl)\b|\.v_parameterization\b"),
    re.compile(r"""[=!]=\s*["']""" + DENOISERS + r"""["']|["']""" + DENOISERS + r"""["']\s*[=!]="""),
]
KNOWN = {
    "engine/config/rules.py": 5,  # the old flags' consistency rules
    "engine/config/settings_model.py": 3,  # the old flags' settings (read from YAML and Kohya files)
    "engine/config/runconfig.py": 1,  # the quick pick fills the old flags
    "engine/train/preflight.py": 3,  # checks the old flags against the model
    "engine/train/setup.py": 2,  # hands the old flags to the loader
    "engine/lorafile/names.py": 3,  # SD Kohya names: SDXL's LDM block numbers
    "engine/lora_size.py": 2,  # file-size estimate: UNet or Flux transformer layer walk
    "engine/vram/estimate.py": 3,  # VRAM estimate: UNet or Flux transformer activations
    "engine/vram/parts.py": 2,
    "engine/vram/counts.py": 1,
    "engine/vram/lora_params.py": 1,
}


def family_branches(root: Path) -> dict[str, int]:
    """Lines (code, not comments) with a family branch, per file outside engine/families/."""
    found: dict[str, int] = {}
    for package in ("engine", "tui_lora"):
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative.startswith("engine/families/"):
                continue
            lines = [line.split("#")[0] for line in path.read_text(encoding="utf-8").splitlines()]
            count = sum(1 for line in lines if any(p.search(line) for p in PATTERNS))
            if count:
                found[relative] = count
    return found


def test_no_new_family_branch_outside_the_family_packages():
    found = family_branches(ROOT)
    new = {f: n for f, n in found.items() if f not in KNOWN or n > KNOWN[f]}
    assert new == {}, "put what differs between families behind a ModelFamily hook (engine/families/base.py)"
    fewer = {f: (KNOWN[f], found.get(f, 0)) for f in KNOWN if found.get(f, 0) < KNOWN[f]}
    assert fewer == {}, "fewer family branches now: lower (or drop) these entries in KNOWN"


def test_the_branch_count_sees_each_kind_of_branch(tmp_path):
    generic = tmp_path / "engine" / "train"
    generic.mkdir(parents=True)
    (generic / "x.py").write_text('if family == "sdxl":\n    pass\nif cfg.model.v2:\n    pass\n'
                                  'ok = config["_class_name"] == "FluxTransformer2DModel"\n'
                                  '# a comment naming "sd1" == x is fine\n')
    inside = tmp_path / "engine" / "families" / "sdxl"
    inside.mkdir(parents=True)
    (inside / "y.py").write_text('if family == "sdxl":\n    pass\n')
    assert family_branches(tmp_path) == {"engine/train/x.py": 3}


def _import_graph() -> dict[str, set[str]]:
    """Every import between the project's modules, also inside functions (TYPE_CHECKING skipped)."""
    import ast

    modules = {}
    for package in ("engine", "tui_lora"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in skipped or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = name.split(".")
                    keep = len(parts) - node.level + (1 if path.name == "__init__.py" else 0)
                    base = ".".join(parts[:keep] + ([base] if base else []))
                candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in candidates:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_import_cycle_goes_through_a_family_module():
    graph = _import_graph()
    assert graph["engine.families"] >= {"engine.families.sd1", "engine.families.flux1"}  # the walk sees imports
    through_families = [sorted(c) for c in _cycles(graph) if any(m.startswith("engine.families") for m in c)]
    assert through_families == []


def test_cycle_finder_finds_a_cycle_made_by_an_import_inside_a_function():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [{"a", "b"}]


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_the_import_layer_contracts_hold():
    result = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout[-3000:]
