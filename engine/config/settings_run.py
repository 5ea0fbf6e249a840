"""How a run is carried out and recorded: logging, hardware, the queue, file metadata, overwriting."""

from __future__ import annotations

from ..schema import Setting

RUN_SETTINGS = [
    Setting(
        "logging.log_with", "choice", "tensorboard", "Log with",
        "tensorboard, wandb (needs the wandb extra) or all; needs a logging folder.",
        "Where training curves go when a logging folder is set. TensorBoard writes files you open "
        "with 'tensorboard --logdir'; Weights & Biases uploads them (needs the 'wandb' package and a "
        "login).",
        "advanced", kohya="log_with", choices=("tensorboard", "wandb", "all"), tier="expected",
        applies=lambda v: None if v.get("folders.logging") else "set a logging folder first",
    ),
    Setting(
        "logging.log_prefix", "str", "", "Log folder prefix",
        "Text put in front of this run's log folder name, e.g. 'xl-loha-'.",
        "Each run logs into its own folder (W&B run) named after the output name and the run; this "
        "text goes in front, so runs of one experiment sort together in TensorBoard. Letters, digits, "
        "'-', '_' and '.' only.",
        "advanced", kohya="log_prefix", tier="expected",
        applies=lambda v: None if v.get("folders.logging") else "set a logging folder first",
    ),
    Setting(
        "hardware.num_processes", "int", 1, "GPUs (processes)",
        "Train on this many GPUs at once through accelerate.",
        "Each process takes its share of the batches on its own GPU; the batch size is per "
        "process, so the effective batch is batch size × processes.",
        "advanced", kohya="num_processes", minimum=1, tier="expected",
    ),
    Setting(
        "hardware.gpu_ids", "int_list", [], "GPU ids",
        "Which GPUs to use (e.g. 0,1). Empty: the first ones available.",
        "Limits training to these GPU numbers (as nvidia-smi shows them). Leave empty to use the "
        "first N.",
        "advanced", kohya="gpu_ids", tier="expected", minimum=0,
    ),
    Setting(
        "queue.stop_on_failure", "bool", False, "Stop the queue if this run fails",
        "When run from the queue: if this run fails, runs out of memory, is stopped or lost, pause the queue.",
        "Off: the queue records why this run ended and goes on with the next one. On: the queue "
        "pauses instead, so later runs that build on this one do not start; 'tui-lora queue resume' "
        "goes on. Has no effect when the run is started directly with 'tui-lora train'.",
        "advanced", tier="expected",
    ),
    Setting(
        "hardware.vram_gb", "float", None, "GPU memory (GiB)",
        "The GPU size to check the memory estimate against when it cannot be read here.",
        "The review screen and `validate` estimate the run's peak GPU memory and say whether it fits. "
        "On a machine with an NVIDIA GPU its size is read from the driver; elsewhere (planning a run on "
        "a laptop, say) the estimate is compared with this figure. Empty: no comparison unless a GPU is found.",
        "advanced", optional=True, minimum=0, min_exclusive=True, tier="expected", suffix="GiB",
        empty_means="the GPU found on this machine",
    ),
    Setting("metadata.title", "str", "", "Title", "Name shown by tools that read model metadata.",
            "Stored as 'modelspec.title'; defaults to the output name when empty.",
            "advanced", kohya="metadata_title", ss_extra=False, tier="expected"),
    Setting("metadata.author", "str", "", "Author", "Who made this LoRA.",
            "Stored as 'modelspec.author'.", "advanced", kohya="metadata_author", ss_extra=False, tier="expected"),
    Setting("metadata.description", "str", "", "Description", "What the LoRA does and how to prompt it.",
            "Stored as 'modelspec.description'.", "advanced", kohya="metadata_description", ss_extra=False, tier="expected"),
    Setting("metadata.license", "str", "", "License", "Licence under which you share the LoRA.",
            "Stored as 'modelspec.license'.", "advanced", kohya="metadata_license", ss_extra=False, tier="expected"),
    Setting("metadata.tags", "str", "", "Tags", "Comma-separated tags for model sites.",
            "Stored as 'modelspec.tags'.", "advanced", kohya="metadata_tags", ss_extra=False, tier="expected"),
    Setting(
        "overwrite", "bool", False, "Overwrite existing files",
        "Allow replacing an existing LoRA with the same name in the output folder.",
        "Off by default so an earlier result is never lost: training refuses to start when the "
        "output file exists. The wizard instead offers the next free name (name_v2).",
        "folders", tier="expected",
    ),
]
