"""Network settings: what kind of LoRA, how large, how strong, and its regularisers."""

from __future__ import annotations

from ..schema import Setting

NETWORK_TYPES = ("lora", "locon", "loha", "lokr", "dylora")


def _conv_applies(values):
    if values.get("network.type") == "dylora":
        return "dylora trains no 3×3 convolutions"
    return None if values.get("network.type") != "lora" else "plain LoRA trains no 3×3 convolutions"


NETWORK_SETTINGS = [
    Setting(
        "network.type", "choice", "lora", "Network type",
        "lora: attention layers; locon adds convolutions; loha/lokr/dylora: variants.",
        "lora (Kohya's 'Standard') adds small low-rank matrices to the attention and projection "
        "layers of the UNet and the text encoder; it is the most compatible choice. locon also adapts "
        "the 3×3 convolutions of the ResNet blocks and up/down samplers, which helps with styles and "
        "textures. loha (Hadamard product) and lokr (Kronecker product) are LyCORIS formats that "
        "express more in the same file size; every common image tool loads them. dylora trains a "
        "plain LoRA so that its first ranks also work alone: the file is an ordinary LoRA, which can "
        "later be cut down to a smaller rank without retraining.",
        "basic", kohya="LoRA_type", ss_extra=False, choices=NETWORK_TYPES,
    ),
    Setting(
        "network.weights", "path", None, "Continue from LoRA",
        "An existing LoRA file to start from instead of from zero.",
        "Training starts from the weights in this file (one of ours or one made by the Kohya "
        "scripts) instead of a fresh LoRA. The file must be for the same model family and network "
        "type; its rank must match unless 'take rank from file' is on. The file itself is only read.",
        "basic", kohya="network_weights", optional=True, disk="read_file",
    ),
    Setting(
        "network.dim_from_weights", "bool", False, "Take rank from file",
        "Use the rank and alpha stored in the 'continue from' file.",
        "When continuing from a LoRA, read its rank (and alpha) from the file instead of the values "
        "below, so the shapes match. Needs a file in 'Continue from LoRA'.",
        "basic", kohya="dim_from_weights",
    ),
    Setting(
        "network.rank", "int", 8, "Rank (dim)",
        "Size of the LoRA matrices: higher learns more detail, larger file. 4–32 is typical.",
        "Each adapted layer learns a change of its weights written as the product of two thin "
        "matrices of this inner size. A larger rank can hold more detail but trains slower, "
        "overfits sooner and makes a bigger file (size grows linearly). Characters often need 8–32, "
        "styles 16–64.",
        "basic", kohya="network_dim", ss_extra=False, minimum=1, maximum=1024,
    ),
    Setting(
        "network.alpha", "float", 1.0, "Alpha",
        "Scales the LoRA's effect by alpha / rank; lower alpha needs a higher learning rate.",
        "The learned change is multiplied by alpha divided by rank. With alpha equal to rank the "
        "scale is 1; with alpha 1 and rank 8 it is 1/8, which damps the updates so training is "
        "steadier but needs a higher learning rate. The value is stored in the file so image tools "
        "apply the same scale. Alpha above rank amplifies updates and is rarely what you want.",
        "basic", kohya="network_alpha", ss_extra=False, minimum=0, min_exclusive=True,
    ),
    Setting(
        "network.conv_rank", "int", 1, "Conv rank",
        "Rank for the 3×3 convolution layers (locon, loha, lokr).",
        "The inner size used for the convolution layers that locon, loha and lokr also adapt. "
        "Convolutions carry texture and fine detail; 4–16 is a common range. Not used by plain lora.",
        "basic", kohya="conv_dim", ss_extra=False, minimum=1, maximum=1024, applies=_conv_applies,
    ),
    Setting(
        "network.conv_alpha", "float", 1.0, "Conv alpha",
        "Alpha for the convolution layers: their scale is conv alpha / conv rank.",
        "Works like alpha, for the convolution layers only. Not used by plain lora.",
        "basic", kohya="conv_alpha", ss_extra=False, minimum=0, min_exclusive=True, applies=_conv_applies,
    ),
    Setting(
        "network.scale_weight_norms", "float", 0.0, "Max-norm (scale weight norms)",
        "0 = off. Caps the size of each layer's learned change after every step; 1 is typical.",
        "After every step, the size (norm) of each layer's learned change is measured; any layer above "
        "this value is scaled back down to it. It keeps single layers from running away, which makes "
        "the LoRA behave better at high strengths and when combined with others. The dashboard shows "
        "how many layers were scaled and the mean and largest norm.",
        "advanced", kohya="scale_weight_norms", minimum=0,
    ),
    Setting(
        "network.dropout", "float", 0.0, "Network dropout",
        "Zeroes random parts of each LoRA's inner output while training; 0.1–0.5 when used.",
        "During training, each value coming out of a LoRA's first (down) matrix is dropped with this "
        "probability and the rest scaled up to compensate. This fights overfitting on small "
        "datasets. It has no effect when the LoRA is used to make images.",
        "advanced", kohya="network_dropout", ss_extra=False, minimum=0, maximum=1, max_exclusive=True,
    ),
    Setting(
        "network.rank_dropout", "float", 0.0, "Rank dropout",
        "Drops whole ranks at random while training; 0.1–0.3 when used.",
        "Like network dropout, but a whole rank (one of the inner channels) is switched off at once "
        "for a step, so no single rank can carry everything. Only active during training.",
        "advanced", kohya="rank_dropout", ss_extra=False, minimum=0, maximum=1, max_exclusive=True,
    ),
    Setting(
        "network.module_dropout", "float", 0.0, "Module dropout",
        "Skips a whole LoRA layer for a step with this probability; 0.1–0.3 when used.",
        "Each step, every adapted layer is left out entirely with this probability, so the LoRA "
        "learns not to depend on any one layer. Only active during training.",
        "advanced", kohya="module_dropout", ss_extra=False, minimum=0, maximum=1, max_exclusive=True,
    ),
]
