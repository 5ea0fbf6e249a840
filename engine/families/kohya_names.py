"""How sd-scripts and the Kohya GUI name a family: the facts `engine.kohya` reads and writes with.

Each family declares one `KohyaNames`; the importer and the exporters build their tables from the
registry, so a new family brings its own script, GUI switch and network module with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class KohyaNames:
    # sd-scripts LoRA scripts (file stems) that train this family: "flux_train_network".
    scripts: tuple[str, ...] = ()
    # Kohya GUI keys that select the family ({"flux1_checkbox": True}); empty: the GUI's default (SD 1.x).
    gui_keys: Mapping[str, object] = field(default_factory=dict)
    # sd-scripts' --network_module for a plain LoRA of this family, and the GUI's LoRA_type for it.
    network_module: str = "networks.lora"
    gui_lora_type: str = "Standard"
    # Options only a config of this family sets (its companion files): they name the family in a
    # config read without its script.
    marker_options: tuple[str, ...] = ()
    # Options its sd-scripts trainer reads but does not use; an import says so instead of dropping them.
    ignored_options: tuple[str, ...] = ()
    # The GUI's own spellings of sd-scripts options for this family ({"sd3_clip_l": "clip_l"}): read
    # as the option (whose setting's `kohya=` names it) when the GUI keys select the family.
    gui_renames: Mapping[str, str] = field(default_factory=dict)
    # GUI keys only this family reads (the GUI saves them, filled, in every config): dropped from others.
    gui_options: tuple[str, ...] = ()
    # Its GUI keys tui-lora has no counterpart for: (what the feature is, {GUI key: the GUI's default}).
    no_counterpart: tuple[tuple[str, Mapping[str, object]], ...] = ()
