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


def model_companions(cfg: RunConfig) -> dict[str, object]:
    """The single-file companions the families add to the model section (FLUX.1's clip_l, t5xxl, ae), by
    their short name: the loader hands them to the family that claims the model."""
    return {setting.key.split(".", 1)[1]: cfg.values.get(setting.key)
            for family in families.REGISTRY.values() for setting in family.settings_sections().get("model", ())}
