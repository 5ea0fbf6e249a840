"""Where a wizard draft comes from: a run file, a Kohya SS config, or the demo.

Each returns a `Draft` or raises `ProblemError` naming the file and how to fix it. A run file with
wrong values still opens (the wizard shows each error at its field); only a file that cannot be
read or parsed at all is refused.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import RunConfig, load_yaml_text
from engine.config.yamlio import read_run_text

from .commands.demo import DEMO_SETTINGS
from .draft import Draft
from .user_state import data_dir

def load_draft(path: str | Path) -> Draft:
    """A run file as a draft; a file that does not exist yet becomes a new run saved there."""
    file = Path(path).expanduser()
    if not file.exists():
        return Draft(path=file.resolve())
    document = load_yaml_text(read_run_text(file), str(file))
    return Draft.from_document(document, path=file.resolve())


def import_kohya_draft(path: str | Path) -> Draft:
    """A Kohya SS GUI `.json` config, sd-scripts TOML or command line as a new, unsaved draft; the
    importer's notes come along."""
    from engine.kohya.sources import import_kohya_file

    result = import_kohya_file(path)
    draft = Draft.from_config(result.config, notes=result.notes)
    draft.mark_unsaved()  # the import exists only in memory until saved: quitting must ask
    return draft


def demo_root() -> Path:
    return data_dir() / "demo"


def demo_draft(root: Path | None = None) -> Draft:
    """The built-in tiny model on the synthetic dataset: ready to train on a CPU in a minute.

    The dataset is generated once into the user's data folder and reused afterwards.
    """
    root = root or demo_root()
    dataset = root / "dataset"
    images = dataset / "images"
    if not images.is_dir():
        from engine.dataset.synthetic import make_synthetic_dataset

        images, _ = make_synthetic_dataset(dataset)
    values = dict(DEMO_SETTINGS, **{"folders.images": str(images), "folders.output": str(root / "output")})
    config = RunConfig(values)
    draft = Draft.from_config(config)
    draft.path = None
    draft.suggested_path = root / "demo.yaml"
    return draft
