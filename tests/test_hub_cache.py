"""The hub-cache lookup: no huggingface_hub import for a model plainly not cached (validate paid
0.2 s for it), the same answer as huggingface_hub for one that is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.hub_cache import cached_snapshot, hub_cache_dir


def _fake_cache(root: Path, repo_id: str) -> Path:
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    return snapshot


def test_the_cache_folder_follows_huggingface_hubs_variables(tmp_path, monkeypatch):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hub_cache_dir() == tmp_path / "hub"


def test_a_cached_model_is_found_as_huggingface_hub_finds_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    snapshot = _fake_cache(tmp_path, "org/model")
    assert cached_snapshot("org/model") == str(snapshot)
    assert cached_snapshot("org/other") is None


def test_a_model_not_cached_is_answered_without_importing_huggingface_hub(tmp_path):
    code = ("import sys; from engine.hub_cache import cached_snapshot; "
            "print(cached_snapshot('stabilityai/stable-diffusion-xl-base-1.0'), 'huggingface_hub' in sys.modules)")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True,
                         env={"PYTHONPATH": str(root), "HF_HUB_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == ["None", "False"], out.stderr
