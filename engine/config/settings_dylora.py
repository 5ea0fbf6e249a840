"""DyLoRA: a plain LoRA trained so its first ranks also work alone (sd-scripts' networks/dylora.py)."""

from __future__ import annotations

from ..problems import Problem, error
from ..schema import Setting

DYLORA_SETTINGS = [
    Setting(
        "network.dylora_unit", "int", 1, "DyLoRA unit",
        "DyLoRA trains the ranks in groups of this size; the rank must be a multiple of it.",
        "Each step, every layer picks one group of this many ranks at random and trains only that "
        "group, with the ranks before it in use but held still. The LoRA then works when cut after any "
        "whole group. 1 gives the finest choice of ranks; larger groups train each rank more often.",
        "advanced", kohya="unit", minimum=1, maximum=1024, tier="expected", ss_extra=False,
        applies=lambda v: None if v.get("network.type") == "dylora" else "only for dylora",
    ),
]


def dylora_rules(v) -> list[Problem]:
    """What sd-scripts' DyLoRA cannot do, said where it is set."""
    if v["network.type"] != "dylora":
        return []
    out = []
    if v["network.rank"] % v["network.dylora_unit"]:
        out.append(error("network.dylora_unit", f"the rank ({v['network.rank']}) is not a multiple of the unit "
                         f"({v['network.dylora_unit']})", "pick a unit that divides the rank, such as 1"))
    for key in ("network.dropout", "network.rank_dropout", "network.module_dropout"):
        if v[key]:
            out.append(error(key, "DyLoRA trains without dropouts (sd-scripts' DyLoRA has none)", "set it to 0"))
    if v["network.scale_weight_norms"]:
        out.append(error("network.scale_weight_norms", "max-norm is not available for DyLoRA (nor in sd-scripts)",
                         "set it to 0, or train a lora"))
    return out
