"""Model and Folders screens: which base model, which images, where results go."""

from __future__ import annotations

from .. import families
from ..schema import Setting



def _menu() -> dict[str, tuple[str, str]]:
    """pick: (hub id or builtin name, family), from each family's quick picks: groups in registry order,
    and within a group the real models before the built-in tiny ones."""
    listed = [(family.menu_group or family.name, pick, path, family.name)
              for family in families.REGISTRY.values() for pick, path in family.quick_picks]
    groups = list(dict.fromkeys(group for group, *_ in listed))
    ordered = sorted(enumerate(listed), key=lambda item: (groups.index(item[1][0]),
                                                           item[1][2].startswith("builtin-"), item[0]))
    return {pick: (path, name) for _, (_, pick, path, name) in ordered}


_PICKS = _menu()
# Each pick's path and family.
QUICK_PICKS: dict[str, dict] = {pick: {"path": path, "family": family} for pick, (path, family) in _PICKS.items()}


def is_tiny(values) -> bool:
    return str(values.get("model.path") or values.get("model.quick_pick") or "").startswith("builtin-tiny")


def model_family(values) -> families.ModelFamily:
    """The family the settings name (for `auto`, SD 1.x: what an unnamed model is taken as)."""
    return families.of_values(values)


def fill_family(values: dict) -> None:
    """Fill `model.family` from the quick pick when the file does not name it (`auto` for a custom model)."""
    implied = QUICK_PICKS.get(values.get("model.quick_pick", "sd15"))
    values.setdefault("model.family", implied["family"] if implied else families.AUTO)


MODEL_SETTINGS = [
    Setting(
        "model.quick_pick", "choice", "sd15", "Base model",
        "A well-known base model, a tiny built-in one for trying things out, or your own.",
        "Choose the model your LoRA will be trained against. A LoRA only works with the family it was "
        "trained on: an SD 1.5 LoRA does nothing useful on SDXL. The hub picks load from your local "
        "Hugging Face cache (or download when this machine is online). The builtin-tiny models are "
        "small random networks made on this machine: they produce noise, but they exercise every part "
        "of training in seconds on a CPU. Pick 'custom' to point at your own folder or file.",
        "model", kohya="model_list", ss_extra=False, choices=tuple(QUICK_PICKS) + ("custom",),
    ),
    Setting(
        "model.path", "str", "", "Model path or hub id",
        "A diffusers folder, a single .safetensors/.ckpt file, or a Hugging Face id.",
        "Where the base model comes from. A folder in diffusers layout (with model_index.json) loads "
        "as it is. A single checkpoint file (what most model sites offer) also needs the model's "
        "config files: set the config folder below when offline. A hub id such as "
        "'stable-diffusion-v1-5/stable-diffusion-v1-5' is looked up in the local cache. Filled in "
        "automatically by the quick pick.",
        "model", kohya="pretrained_model_name_or_path", ss_extra=False, optional=True, empty_means="the quick pick's model",
        model_default=lambda v: QUICK_PICKS.get(v.get("model.quick_pick"), {}).get("path", ""),
    ),
    Setting(
        "model.config_dir", "path", None, "Config folder (single-file models)",
        "Diffusers configs and tokenizer for a single-file model, so it loads offline.",
        "A single .safetensors or .ckpt file holds weights but not the description of the network "
        "they belong to. Point this at a folder with the matching diffusers configs and tokenizer "
        "(a diffusers copy of the same family without weights is enough). Leave empty to fetch "
        "them from the hub, which needs a network connection.",
        "model", optional=True, disk="read_folder",
        applies=lambda v: None if str(v.get("model.path") or "").lower().endswith((".safetensors", ".ckpt"))
        else "only used when the model path is a single file",
    ),
    Setting(
        "model.family", "choice", "auto", "Model family",
        "Which kind of model the base is; auto reads it from the model itself.",
        "The family decides how training talks to the model: which text encoders it has, whether it "
        "predicts noise or velocity, the size it was trained at, and how the LoRA file names its layers. "
        "'auto' looks at the model's own configs or file header and uses what it finds. Naming a family "
        "makes the trainer check the model against it and stop with an error when they differ. Set by "
        "the quick pick.",
        "model", choices=(families.AUTO, *families.FAMILY_NAMES),
    ),
    Setting(
        "model.save_as", "choice", "safetensors", "File format",
        "safetensors (safe, recommended) or ckpt (Python pickle).",
        "safetensors files hold only numbers and metadata and cannot run code when opened; every "
        "current tool reads them. ckpt is a Python pickle: opening one from an untrusted source can "
        "run arbitrary code, and it keeps no metadata. Choose ckpt only for an old tool that needs it.",
        "model", kohya="save_model_as", ss_extra=False, choices=("safetensors", "ckpt"),
    ),
]

FOLDER_SETTINGS = [
    Setting(
        "folders.images", "path", None, "Image folder",
        "Parent of concept folders named '<repeats>_<tokens>', e.g. '10_mychar woman'.",
        "Put your training images in one or more sub-folders of this folder. Each sub-folder name "
        "starts with how many times its images are repeated per epoch, then an underscore, then the "
        "words used as the caption for images that have no caption file (for example '10_mychar "
        "woman'). A caption file has the image's name with the caption extension (photo1.png → "
        "photo1.txt). Sub-folders without the number are skipped with a warning.",
        "folders", kohya="train_data_dir", required=True, disk="read_folder",
    ),
    Setting(
        "folders.regularization", "path", None, "Regularisation folder",
        "Optional class images (same layout) that keep the model from drifting.",
        "Regularisation images show the model what the general class looks like (for example other "
        "women, if you train one woman), so the LoRA learns your subject instead of changing the "
        "whole class. They are repeated or cut to match the number of training images, each epoch "
        "then has twice as many steps, and their loss is weighted by the prior loss weight. "
        "Leave empty to train without them.",
        "folders", kohya="reg_data_dir", optional=True, disk="read_folder",
    ),
    Setting(
        "folders.output", "path", "./output", "Output folder",
        "Where the LoRA files, intermediate saves, samples and a copy of this run file go.",
        "The finished LoRA, the saves made during training, sample images and a copy of this run "
        "file are written here. It is created if missing. Existing files are never replaced unless "
        "'overwrite' is on.",
        "folders", kohya="output_dir", disk="write_folder",
    ),
    Setting(
        "folders.logging", "path", None, "Logging folder",
        "When set, TensorBoard logs (loss, learning rate, samples) are written here.",
        "Set a folder to record the loss and learning rate of every step for TensorBoard (or W&B, see "
        "the logging option). Useful to compare runs later. Leave empty to skip logging; the live "
        "dashboard works either way.",
        "folders", kohya="logging_dir", optional=True, disk="write_folder",
    ),
    Setting(
        "folders.output_name", "str", "my_lora", "Output name",
        "Base name of the LoRA file (letters, digits, '-', '_', '.').",
        "The LoRA is saved as '<name>.safetensors' in the output folder, and saves made during "
        "training as '<name>-000002.safetensors' (the number is the epoch). It is also what people "
        "see in their image tools' LoRA list. It cannot contain folder separators.",
        "folders", kohya="output_name", ss_extra=False,
    ),
    Setting(
        "folders.training_comment", "str", "", "Training comment",
        "Free text stored in the LoRA file's metadata (trigger words, notes).",
        "Anything you want the file to carry: trigger words, the source of the images, a licence "
        "note. It is stored as 'ss_training_comment' and shown by tools that read LoRA metadata.",
        "folders", kohya="training_comment", ss_extra=False,
    ),
]
