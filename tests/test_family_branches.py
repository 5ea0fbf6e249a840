"""The generic engine does not grow new family branches, and the family layers hold (issue 22).

(Import cycles, also through imports inside functions, are checked by tests/test_import_contracts.py.)

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
    "engine/config/yamlio.py": 1,  # the YAML reader: the old flags become model.family, with a note
    "engine/lora_size.py": 2,  # file-size estimate: UNet or Flux transformer layer walk
    "engine/vram/estimate.py": 3,  # VRAM estimate: UNet or Flux transformer activations
    "engine/vram/parts.py": 2,
    "engine/vram/savers.py": 2,  # block-swap and text-encoder terms: Flux transformer layer walk
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


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_the_import_layer_contracts_hold():
    result = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout[-3000:]
