"""The run's family, worked out once from the settings and handed to the loader as an object (issue 22).

Preflight checks the model against it and `build_model` loads with it; nothing after the run file
is read looks at the old v2 / v_parameterization / sdxl booleans (the YAML reader and the Kohya
importer turn them into `model.family`).
"""

from __future__ import annotations

from .. import families
from ..config import RunConfig


def run_family(cfg: RunConfig) -> families.ModelFamily | None:
    """The run's family from `model.family`; None for `auto`, which takes whatever family the model
    shows when it loads."""
    name = families.requested_family(cfg.values)
    return None if name == families.AUTO else families.get(name)

