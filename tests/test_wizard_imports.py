"""The wizard process stays light: importing the app, and using every screen, pulls in no torch,
diffusers, transformers, peft, accelerate or bitsandbytes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ("torch", "diffusers", "transformers", "peft", "accelerate", "bitsandbytes")
ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, env_dir: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_dir), "XDG_STATE_HOME": str(env_dir / "state"),
           "XDG_DATA_HOME": str(env_dir / "data"), "TUI_LORA_CACHE": str(env_dir / "cache"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True,
                            env=env, cwd=env_dir, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_app_loads_no_training_library(tmp_path):
    loaded = run_python(f"""
        import sys
        import tui_lora.app
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """, tmp_path)
    assert loaded == "[]"


def test_walking_every_screen_loads_no_training_library(tmp_path):
    loaded = run_python(f"""
        import asyncio, sys
        from engine.dataset.synthetic import make_synthetic_dataset
        from tui_lora.app import WizardApp
        from tui_lora.draft import Draft

        images, _ = make_synthetic_dataset("dataset")

        async def walk():
            app = WizardApp(Draft({{"model.quick_pick": "builtin-tiny-sd1", "folders.images": str(images)}}))
            async with app.run_test(size=(80, 24)) as pilot:
                for _ in range(3):
                    await pilot.pause(0.6)
                    await app.workers.wait_for_complete()
                    await pilot.press("ctrl+n")
                await pilot.pause(0.6)
                await app.workers.wait_for_complete()
                assert type(app.screen).__name__ == "ReviewScreen", app.screen

        asyncio.run(walk())
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """, tmp_path)
    assert loaded == "[]"
