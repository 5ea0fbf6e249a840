"""sd-scripts options (a config TOML, an sd-scripts JSON, a command line's flags) → Kohya GUI keys.

sd-scripts and the Kohya GUI share most option names; where they differ (resolution,
optimizer_type, network_module + network_args, lr_warmup_steps, learning rates given per part,
the attention flags) this module rewrites the options into the GUI's keys, so that one
conversion (`engine.config.kohya_import`) decides every value. Options sd-scripts leaves out take
sd-scripts' own defaults, which differ from the GUI's in places (constant schedule, no buckets,
`.caption` captions, 1600 steps): the imported run then trains as sd-scripts would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.kohya_tables import NOISE_BOTH, number
from ..problems import Problem, ProblemError, error, warning
from .tables import (
    FAMILY_DEFAULT_MODULES,
    FAMILY_GUI_KEYS,
    FAMILY_PLAIN_LORA_TYPES,
    LYCORIS_ALGOS,
    LYCORIS_MODULE,
    NETWORK_ARG_TO_GUI,
    NETWORK_MODULES,
    OLD_OPTIMIZER_SWITCHES,
    SCRIPT_FAMILIES,
    SCRIPT_NO_COUNTERPART,
    SCRIPT_TO_GUI,
    TRAINER_IGNORES,
    family_of_options,
)

# sd-scripts' defaults where they differ from tui-lora's (GUI key → value), from its argparse
# definitions (library/train_util.py, train_network.py) and networks/lora.py (dim None → 4).
SCRIPT_DEFAULTS: dict[str, Any] = {
    "optimizer": "AdamW", "learning_rate": 2e-6, "lr_scheduler": "constant", "lr_warmup": 0,
    "enable_bucket": False, "caption_extension": ".caption", "network_dim": 4, "network_alpha": 1,
    "sample_sampler": "ddim", "max_data_loader_n_workers": 8, "mixed_precision": "no",
    "save_precision": "float", "cache_latents": False,
}
MODULE_HINT = ("use networks.lora (with conv_dim in network_args for LoCon), networks.dylora, networks.lora_flux, "
               "or lycoris.kohya with algo=locon, loha or lokr")
SCRIPT_DEFAULT_STEPS = 1600  # --max_train_steps' default, used when --max_train_epochs is not given
# Options read here, not passed on to the GUI conversion.
_HANDLED = frozenset(("network_module", "network_args", "lr_warmup_steps", "learning_rate", "unet_lr",
                      "text_encoder_lr", "network_train_unet_only", "network_train_text_encoder_only",
                      "xformers", "sdpa", "max_train_epochs", "max_train_steps", "config_file",
                      "dataset_config", "sample_prompts", "output_config"))


@dataclass
class Translation:
    """Kohya GUI keys for the conversion, and what was said about the options on the way."""

    gui: dict[str, Any] = field(default_factory=dict)
    notes: list[Problem] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # GUI key → the sd-scripts name it came from
    zero_seed: bool = False
    warmup_steps: int = 0  # warmup in steps of a run whose length the images decide (resolved by the caller)

    def note(self, key: str, message: str, hint: str = "") -> None:
        self.notes.append(warning(key, message, hint))


def _first(value: Any) -> Any:
    """sd-scripts' nargs='*' options (text_encoder_lr, unet_lr) arrive as lists."""
    return value[0] if isinstance(value, list) and value else (None if isinstance(value, list) else value)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def _as_items(value: Any) -> list[str]:
    """network_args / optimizer_args: a TOML list, a command line's words, or one text."""
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, str):
        return value.split()
    return []


def translate(options: Mapping[str, Any], *, script: str = "", base_dir: Path | None = None) -> Translation:
    """sd-scripts options → GUI keys, sd-scripts' defaults filling what is left out. `script` (a file
    stem such as flux_train_network) selects the family; `base_dir` is where a relative prompt file is read."""
    out = Translation()
    opts = {str(key).replace("-", "_"): value for key, value in options.items()}
    family = SCRIPT_FAMILIES[script][0] if script in SCRIPT_FAMILIES else family_of_options(opts)
    out.gui.update(FAMILY_GUI_KEYS.get(family, {}))
    out.gui.update(SCRIPT_DEFAULTS)
    ignored = TRAINER_IGNORES.get(family, ("", ()))
    for key, value in opts.items():
        if key in _HANDLED:
            continue
        if key in ignored[1]:
            if value not in (None, False, 0, "", "0"):
                out.notes.append(ignored_note(key, value, ignored[0]))
            continue
        if key in SCRIPT_NO_COUNTERPART:
            if value not in (None, False, 0, "", [], "0"):
                out.note(key, f"{SCRIPT_NO_COUNTERPART[key]} has no counterpart in tui-lora; {value} was not imported")
            continue
        if key in OLD_OPTIMIZER_SWITCHES:
            if _truthy(value) and not opts.get("optimizer_type"):
                out.gui["optimizer"] = OLD_OPTIMIZER_SWITCHES[key]
            continue
        gui_key = SCRIPT_TO_GUI.get(key, key)
        if gui_key != key:
            out.renamed[gui_key] = key
        out.gui[gui_key] = _scalar(value, key)
    if number(_first(opts.get("seed"))) == 0:
        out.zero_seed = True  # the GUI's 0 means 'random'; sd-scripts' --seed 0 is the seed 0
    out.gui["noise_offset_type"] = NOISE_BOTH  # sd-scripts adds both kinds of noise when both are set
    if _truthy(opts.get("cache_latents_to_disk")):
        out.gui["cache_latents"] = True  # sd-scripts turns caching on for it (verify_training_args)
    _network(opts, out, family)
    _learning_rates(opts, out)
    _length_and_warmup(opts, out)
    _attention(opts, out)
    _prompts(opts, out, base_dir)
    return out


def ignored_note(key: str, value: Any, trainer: str) -> Problem:
    return warning(key, f"{value} is ignored by sd-scripts' {trainer} trainer too; not imported")


def _scalar(value: Any, key: str) -> Any:
    if key in ("optimizer_args", "lr_scheduler_args", "lr_scheduler_type"):
        return _as_items(value) if key != "lr_scheduler_type" else " ".join(_as_items(value))
    if key == "resolution" and isinstance(value, list):  # TOML's [768, 768]
        return ",".join(str(v) for v in value)
    if key == "gpu_ids" and isinstance(value, list):
        return ",".join(str(v) for v in value)
    return _first(value) if isinstance(value, list) and key not in ("sample_prompts",) else value


def _network(opts: Mapping[str, Any], out: Translation, family: str) -> None:
    module = _first(opts.get("network_module"))
    if module is not None and not isinstance(module, str):
        raise ProblemError([error("network_module", f"{module!r} is not a module name", MODULE_HINT)])
    args = {}
    for item in _as_items(opts.get("network_args")):
        name, has_value, value = item.partition("=")
        args[name.strip()] = value.strip().strip("'\"") if has_value else True
    if module is None:
        module = FAMILY_DEFAULT_MODULES.get(family, "networks.lora")
        out.note("network_module", f"not given; read as {module} (a LoRA), as the script's usual module",
                 "add --network_module to the command if it trains something else")
    if module == LYCORIS_MODULE:
        algo = str(args.pop("algo", "lora")).lower()
        lora_type = LYCORIS_ALGOS.get(algo, f"LyCORIS/{algo}")
    elif module in NETWORK_MODULES:
        lora_type = NETWORK_MODULES[module]
        if lora_type == "Standard" and args.get("conv_dim") not in (None, "0", "", 0):
            lora_type = "Kohya LoCon"  # networks.lora with conv_dim trains the 3×3 convolutions too
    else:
        raise ProblemError([error("network_module", f"'{module}' is not a network module tui-lora trains",
                                  MODULE_HINT)])
    if lora_type == "Standard":
        lora_type = FAMILY_PLAIN_LORA_TYPES.get(family, lora_type)
    out.gui["LoRA_type"] = lora_type
    out.renamed["LoRA_type"] = "network_module"
    for name, value in args.items():
        gui_key = NETWORK_ARG_TO_GUI.get(name, name)
        if gui_key:
            out.gui[gui_key] = value
            out.renamed[gui_key] = "network_args"


def _learning_rates(opts: Mapping[str, Any], out: Translation) -> None:
    """sd-scripts: a part's rate falls back to learning_rate; network_train_*_only freezes the other."""
    lr = number(_first(opts.get("learning_rate")))
    lr = lr if lr is not None else SCRIPT_DEFAULTS["learning_rate"]
    te_raw = opts.get("text_encoder_lr")
    if isinstance(te_raw, list) and len({str(v) for v in te_raw}) > 1:
        out.note("text_encoder_lr", f"{te_raw} gives each text encoder its own rate; tui-lora trains both at "
                                    f"the first, {te_raw[0]}")
    unet, te = number(_first(opts.get("unet_lr"))), number(_first(te_raw))
    if _truthy(opts.get("network_train_unet_only")):
        te = 0.0
    if _truthy(opts.get("network_train_text_encoder_only")):
        unet = 0.0
    out.gui.update({"learning_rate": lr, "unet_lr": lr if unet is None else unet,
                    "text_encoder_lr": lr if te is None else te})


def _length_and_warmup(opts: Mapping[str, Any], out: Translation) -> None:
    epochs = number(opts.get("max_train_epochs"))
    steps = number(opts.get("max_train_steps"))
    if epochs:
        out.gui["epoch"] = int(epochs)
        out.renamed["epoch"] = "max_train_epochs"
        if steps:
            out.note("max_train_steps", f"sd-scripts ignores it when max_train_epochs is set; the run has "
                                        f"{int(epochs)} epochs")
    else:
        out.gui["max_train_steps"] = int(steps) if steps else SCRIPT_DEFAULT_STEPS
        if not steps:
            out.note("max_train_steps", f"neither max_train_epochs nor max_train_steps is given: sd-scripts trains "
                                        f"its default {SCRIPT_DEFAULT_STEPS} steps, and so does the run")
    raw = opts.get("lr_warmup_steps")
    warmup = number(raw)
    if raw is None or not warmup:
        return
    total = None if epochs else out.gui["max_train_steps"]
    if warmup < 1 and (isinstance(raw, float) or "." in str(raw)):  # sd-scripts: a float is a share of the steps
        out.gui["lr_warmup"] = round(warmup * 100, 6)
    elif total:
        out.gui["lr_warmup"] = round(100 * warmup / total, 6)
        out.note("lr_warmup_steps", f"{int(warmup)} of {total} steps imported as optimizer.warmup_percent "
                                    f"{out.gui['lr_warmup']:g}")
    else:  # the run's length in steps depends on the images: sources.py counts them when it can
        out.gui["lr_warmup"] = 0
        out.warmup_steps = int(warmup)


def _attention(opts: Mapping[str, Any], out: Translation) -> None:
    if _truthy(opts.get("xformers")):
        out.gui["xformers"] = "xformers"
    elif _truthy(opts.get("sdpa")):
        out.gui["xformers"] = "sdpa"
    else:
        out.gui["xformers"] = "none"  # sd-scripts' own attention; the conversion says what is used
    out.renamed["xformers"] = "xformers/sdpa"


def _prompts(opts: Mapping[str, Any], out: Translation, base_dir: Path | None) -> None:
    """sd-scripts' sample_prompts names a file: a .txt one is read (one prompt a line)."""
    raw = opts.get("sample_prompts")
    if not isinstance(raw, str) or not raw.strip():
        return
    path = Path(raw.strip()).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if path.suffix.lower() == ".txt" and path.is_file():
        try:
            out.gui["sample_prompts"] = path.read_text(encoding="utf-8-sig")[:200_000]
            return
        except (OSError, UnicodeDecodeError) as exc:
            out.note("sample_prompts", f"'{path}' cannot be read ({exc}); its prompts were not imported")
            return
    out.gui["sample_prompts"] = raw  # the conversion names a prompt file it cannot read
