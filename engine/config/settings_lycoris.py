"""LyCORIS options of the LoHa and LoKr networks: LoKr's factorization, full matrices, Tucker form, rank dropout scale.

They follow LyCORIS' `lycoris/modules/lokr.py` and `loha.py` (the arguments sd-scripts passes on as
`network_args`, where the LoRA file's ss_network_args records them), so a Kohya preset's values train the same shapes and scales.
"""

from __future__ import annotations

from ..problems import Problem, error, warning
from ..schema import Setting


def _lokr_only(values):
    return None if values.get("network.type") == "lokr" else "only for lokr"


def _locon_loha_lokr(values):
    return None if values.get("network.type") in ("locon", "loha", "lokr") else "only for locon, loha and lokr"


def _lycoris_only(values):
    return None if values.get("network.type") in ("loha", "lokr") else "only for loha and lokr"


LYCORIS_SETTINGS = [
    Setting(
        "network.lokr_factor", "int", -1, "LoKr factor",
        "How each layer is split into two Kronecker factors; -1 picks the most even split.",
        "LoKr writes a layer's change as the Kronecker product of a small and a large matrix. Each "
        "side of the layer (its input and output size) is split into two whole-number factors; with "
        "-1 the split closest to a square root is taken, with a number N the smaller factor is N "
        "(when it divides the size; otherwise the nearest split with no factor above N). A small "
        "factor makes the large matrix, which carries the rank, larger. 4 to 16 are common values.",
        "advanced", kohya="factor", minimum=-1, applies=_lokr_only, tier="expected", ss_extra=False,
    ),
    Setting(
        "network.lokr_full_matrix", "bool", False, "LoKr full matrices",
        "Keep both LoKr factors as full matrices (Kohya: a dim of 10000 or more).",
        "Instead of building the large Kronecker factor from two rank-sized matrices, it is learned "
        "as a full matrix, and the rank no longer matters. The change is then applied at scale 1 "
        "(alpha is ignored), as LyCORIS does. Files grow a lot; combine with a LoKr factor to keep "
        "them in check. Kohya configs ask for this with a network dim of 10000 or more.",
        "advanced", kohya="full_matrix", applies=_lokr_only, tier="expected", ss_extra=False,
    ),
    Setting(
        "network.lokr_decompose_both", "bool", False, "LoKr decompose both",
        "Also build the small Kronecker factor from two rank-sized matrices.",
        "Normally only the larger factor is low-rank and the small one is a full matrix. With this on, "
        "the small one is low-rank too whenever the rank is below half its size, which saves a little "
        "more space at some loss of detail.",
        "advanced", kohya="decompose_both", applies=_lokr_only, tier="expected", ss_extra=False,
    ),
    Setting(
        "network.use_tucker", "bool", False, "Tucker form for convolutions",
        "Store 3×3 convolution changes in Tucker (CP) form: a small core plus two thin matrices.",
        "For convolutions wider than 1×1, LoHa and LoKr normally fold the kernel into one of the "
        "flat matrices. In Tucker form the kernel lives in a small rank×rank core, which keeps the "
        "file smaller for large conv ranks and treats the spatial kernel as its own part. Kohya's "
        "LoKr calls this use_cp.",
        "advanced", kohya="use_tucker", applies=_lycoris_only, tier="expected", ss_extra=False,
    ),
    Setting(
        "network.rank_dropout_scale", "bool", False, "Rescale after rank dropout",
        "After rank dropout, scale the kept rows up so the change keeps its average size.",
        "Rank dropout on LoHa and LoKr switches off whole output rows of the learned change for one "
        "step. With this on, the rows that stay are multiplied by the inverse of the fraction kept, "
        "so the strength of the change does not drop while training. Only matters with rank dropout.",
        "advanced", kohya="rank_dropout_scale", applies=_lycoris_only, tier="expected", ss_extra=False,
    ),
    Setting(
        "network.train_norm", "bool", False, "Train norm layers",
        "Also learn a small change to every norm layer inside the UNet blocks the network adapts.",
        "The group and layer norms in the adapted ResNet and transformer blocks scale and shift each "
        "channel after normalising it. With this on, a per-channel offset for that scale and shift is "
        "learned too, starting at zero, and stored in the file next to the other layers (as LyCORIS "
        "does, under .w_norm and .b_norm). It adds very few numbers and lets the network rescale and "
        "shift whole channels directly. Text-encoder norms are never trained.",
        "advanced", kohya="train_norm", applies=_locon_loha_lokr, tier="expected", ss_extra=False,
    ),
]


def lycoris_rules(v) -> list[Problem]:
    """A LoKr factor LyCORIS cannot use, norm training where no file can hold it, and options set where
    they do nothing."""
    out = []
    if v["network.train_norm"] and (why := _locon_loha_lokr(v)):
        out.append(error("network.train_norm", f"norm layers train {why} (LyCORIS' train_norm)",
                         "set network.type to locon, loha or lokr, or turn network.train_norm off"))
    if v["network.lokr_factor"] == 0:
        out.append(error("network.lokr_factor", "0 is not a factor", "use -1 (automatic) or a whole number ≥ 1"))
    if v["network.rank_dropout_scale"] and not v["network.rank_dropout"] and v["network.type"] in ("loha", "lokr"):
        out.append(warning("network.rank_dropout_scale", "does nothing without rank dropout",
                           "set network.rank_dropout, or turn this off"))
    return out
