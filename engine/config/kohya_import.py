"""Importing Kohya SS GUI `.json` configs (its LoRA tab's saved configs and presets).

The GUI saves every widget of the LoRA tab under its own name, with numbers often stored as text
("8", "1e-4", "") and keys renamed over the GUI's history. `import_kohya_config` turns such a file
into a `RunConfig` plus notes (warnings) that name each Kohya key that was not imported, each
value whose meaning had to be converted, and each place where tui-lora behaves differently.

Choices made here, following what the GUI and sd-scripts do with a key:
- A key tui-lora has no counterpart for is dropped silently only when it holds Kohya's default or
  nothing, or when Kohya itself ignores it for this config (LyCORIS options on a Standard LoRA,
  Flux/SD3 options on an SD model); otherwise a warning names it and its value.
- DyLoRA (Kohya's and LyCORIS') is trained as sd-scripts' DyLoRA. Network types with a close
  counterpart (LoRA-FA, GLoRA) fall back to it with a warning:
  their rank, alpha and learning rates mean the same there. Types with none (iA3, OFT, BOFT, full
  fine-tuning) and SD3 models are refused with an error: their learning rates and sizes would
  train a burned or useless LoRA, so the person must pick a type knowingly.
- FLUX.1 (`flux1_checkbox`, LoRA type `Flux1`) imports as `model.family: flux1` with its files
  (clip_l, t5xxl, ae) and `flux:` options; the SD-objective keys sd-scripts' Flux trainer ignores
  are dropped silently, like any key Kohya ignores for the config.
- A file without folders (a preset) still imports; the result's own validation problems (no image
  folder, …) are returned as warnings, errors marked as "fix before training".
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import families
from ..atomic import read_regular_file
from ..problems import Problem, ProblemError, error, warning
from .runconfig import SETTINGS, RunConfig
from .kohya_tables import (
    NETWORK_TYPES,
    NEAREST_NETWORK_TYPES,
    REFUSED_NETWORK_TYPES,
    REFUSED_MODEL_FLAGS,
    FLUX_GUI_RENAMES,
    SDXL_GUI_RENAMES,
    FLUX_NETWORK_TYPE,
    NOISE_BOTH,
    is_flux_config,
    HUB_PICKS,
    HUB_FAMILIES,
    NEAREST_OPTIMIZERS,
    NEAREST_SCHEDULERS,
    SAMPLERS,
    NEAREST_SAMPLERS,
    SCOPES,
    NO_COUNTERPART,
    SCRIPT_FLAG_KEYS,
    SPECIAL_KOHYA_KEYS,
    TRAIN_ONLY_FLAGS,
    SECRET_KEYS,
    ZERO_MEANS_EMPTY,
    PATH_KEYS,
    _WINDOWS_PATH,
)
from .kohya_tables import number as _number
from .prompt_options import OPTIONS_HINT, parse_prompt_line
from ..families.flux1.settings import FLUX, FLUX_MODEL_SETTINGS, FLUX_SETTINGS, SD_ONLY
from .settings_memory import FLUX_GUI_KEYS
from .settings_model import QUICK_PICKS
from .settings_optimizer import NO_WARMUP_SCHEDULERS, OPTIMIZERS, SCHEDULERS
from .validation import validate_values
from .values import coerce
from .yamlio import dump_run_yaml, write_text_atomic

MAX_KOHYA_FILE_BYTES = 5_000_000
_BY_KOHYA = SETTINGS.by_kohya_key()  # each setting names its Kohya key once, in the schema
# Kohya keys only sd-scripts' FLUX.1 trainer reads (the GUI saves them, filled, in every config).
_FLUX_ONLY_KEYS = tuple(s.kohya for s in FLUX_MODEL_SETTINGS + FLUX_SETTINGS) + tuple(FLUX_GUI_RENAMES) + FLUX_GUI_KEYS
_MISSING = object()


@dataclass
class ImportResult:
    """The imported run settings and every warning about how they were imported."""

    config: RunConfig
    notes: list[Problem] = field(default_factory=list)
    source: str = ""
    kind: str = "Kohya SS GUI config"  # what the file was (engine.kohya.sources reads the other kinds)


# --- small value helpers ----------------------------------------------------------------------

def _is_empty(value: Any) -> bool:
    return value is None or value is _MISSING or (isinstance(value, str) and not value.strip())


def _same(value: Any, default: Any) -> bool:
    """Whether a Kohya value equals its default, across Kohya's spellings ("0" == 0, "" == default)."""
    if _is_empty(value) or value is False or value == default:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return str(value).strip().lower() == str(default).lower()
    if _number(value) is not None:
        return _number(value) == 0 or _number(value) == _number(default)
    return isinstance(value, str) and isinstance(default, str) and value.strip().lower() == default.lower()


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _safe_coerce(setting, raw: Any) -> tuple[Any, Problem | None]:
    try:
        return coerce(setting, raw, lenient=True)
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None, error(setting.key, "is not a usable value", f"allowed: {setting.bounds_text()}")


def parse_script_flags(raw: Any) -> tuple[list[tuple[str, Any]], str]:
    """sd-scripts flags from command-line text: `--a=1 --b 2 3 --c` → [(a, "1"), (b, "2 3"), (c, True)]."""
    if not isinstance(raw, str):
        return [], "is not text"
    try:
        words = shlex.split(raw)
    except ValueError as exc:
        return [], f"cannot be split into words ({exc})"
    flags: list[tuple[str, Any]] = []
    for word in words:
        if word.startswith("--") and len(word) > 2:
            name, has_value, value = word[2:].partition("=")
            flags.append((name.replace("-", "_"), value if has_value else True))
        elif flags:
            name, value = flags[-1]
            flags[-1] = (name, word if value is True else f"{value} {word}")
        else:
            return [], f"starts with '{word}', not with a --flag"
    return flags, ""


def _kv_items(raw: Any) -> list[str]:
    """Kohya's 'k=v k=v' text or a list of such items, split and unquoted as the shell that runs
    sd-scripts does: `betas='0.95,0.98'` reaches the optimizer as betas=0.95,0.98."""
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return [part for item in raw for part in _kv_items(item)]
    if not isinstance(raw, str):
        return []
    try:
        return shlex.split(raw)
    except ValueError:  # an unclosed quote: drop the quotes, as the GUI does
        return raw.replace('"', "").replace("'", "").split()


# --- the conversion ---------------------------------------------------------------------------

class _Conversion:
    """One file's conversion: reads Kohya keys once each, collects our values and the notes."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = {str(k): v for k, v in data.items()}
        self.flux = is_flux_config(self.data)
        # a family whose Kohya names carry its GUI spellings (`KohyaNames.gui_renames` …) and whose GUI
        # keys this config sets; FLUX.1 keeps its own handling below
        self.named = [f for f in families.REGISTRY.values() if f.kohya.gui_renames or f.kohya.gui_options]
        self.family = None if self.flux else next((f for f in self.named if f.kohya.gui_keys and all(
            self.data.get(key) in (value, str(value)) for key, value in f.kohya.gui_keys.items())), None)
        self._rename_old_keys()
        self.notes: list[Problem] = []
        self._merge_additional_parameters()
        self.left = dict(self.data)
        self.values: dict[str, Any] = {}
        self.refusals: list[Problem] = []
        self.adafactor_relative_step = False

    def _merge_additional_parameters(self) -> None:
        """The GUI appends this text to sd-scripts' command line, so a flag in it overrides the
        GUI's own key (argparse keeps the last). Known flags become those keys; the rest are named."""
        raw = self.data.pop("additional_parameters", "")
        if _is_empty(raw):
            return
        flags, problem = parse_script_flags(raw)
        if problem:
            self.note("additional_parameters", f"{_show(raw)} {problem}; not imported")
            return
        for flag, value in flags:
            key = SCRIPT_FLAG_KEYS.get(flag, flag)
            if flag in TRAIN_ONLY_FLAGS:
                rate = self.data.get("learning_rate")
                trained, frozen = TRAIN_ONLY_FLAGS[flag]
                self.data[frozen] = 0
                if not _number(self.data.get(trained)):
                    self.data[trained] = rate
            elif key in ("xformers", "sdpa", "mem_eff_attn") and value is True:
                self.data["xformers"] = "xformers" if key == "xformers" else "sdpa"
            elif key in _BY_KOHYA or key in NO_COUNTERPART or key in SPECIAL_KOHYA_KEYS:
                self.data[key] = value
            else:
                shown = f"--{flag}" + ("" if value is True else f"={value}")
                self.note("additional_parameters", f"'{shown}' has no counterpart in tui-lora; not imported")

    def _rename_old_keys(self) -> None:
        renames = [("lora_network_weights", "network_weights"),
                   ("stop_text_encoder_training_pct", "stop_text_encoder_training")]
        # the Flux and SDXL tabs' cache checkboxes are sd-scripts' plain cache flag, each read
        # only for its own model (an SD config keeps the other tab's checkbox filled, unread)
        if self.family:
            renames += list(self.family.kohya.gui_renames.items())
        elif self.flux:
            renames += list(FLUX_GUI_RENAMES.items())
        elif SCOPES["sdxl"](self.data):
            renames += list(SDXL_GUI_RENAMES.items())
        for old, new in renames:
            if old in self.data and (_is_empty(self.data.get(new)) or self.data[new] == self.data[old]):
                self.data[new] = self.data.pop(old)

    def take(self, key: str) -> Any:
        self.left.pop(key, None)
        return self.data.get(key, _MISSING)

    def note(self, key: str, message: str, hint: str = "") -> None:
        self.notes.append(warning(key or "(empty key)", message, hint))

    def put(self, kohya_key: str, raw: Any) -> Any:
        """Coerce one value into the setting that holds this Kohya key (`Setting.kohya`); an
        unusable value keeps our default, with a note."""
        setting = _BY_KOHYA[kohya_key]
        setting_key = setting.key
        if raw is _MISSING:
            return None
        if _is_empty(raw) and setting.kind in ("list", "int_list", "prompts"):
            self.values[setting_key] = []
            return []
        if _is_empty(raw) and setting.kind != "str":
            if setting.optional:
                self.values[setting_key] = None
            return None
        if kohya_key in ZERO_MEANS_EMPTY and _number(raw) == 0:
            self.values[setting_key] = None
            return None
        value, problem = _safe_coerce(setting, raw)
        if problem:
            self.note(kohya_key, f"{_show(raw)} is not usable for {setting_key}: {problem.message}; "
                                 f"the default is kept", problem.hint)
            return None
        self.values[setting_key] = value
        return value

    def run(self) -> ImportResult:
        for step in (self._refusals, self._model, self._network, self._learning_rates, self._optimizer,
                     self._scheduler, self._epochs, self._attention, self._sampling, self._special_values,
                     self._mapped_keys, self._paths, self._unmapped_keys):
            step()
        if self.refusals:
            raise ProblemError(self.refusals)
        if self.flux:  # sd-scripts' Flux trainer ignores the SD objective's keys: so does the import
            for key in SD_ONLY:
                self.values.pop(key, None)
        if self.family:  # as for Flux: what the family's trainer ignores is named (sources.py), not imported
            ignored = set(self.family.kohya.ignored_options)
            for setting in SETTINGS:
                if setting.kohya in ignored:
                    self.values.pop(setting.key, None)
        values, problems = validate_values(self.values)
        config = RunConfig(values)
        for problem in problems:
            hint = problem.hint
            if problem.is_error:
                hint = f"{hint}; fix this before training" if hint else "fix this before training"
            self.notes.append(warning(problem.field, problem.message, hint))
        return ImportResult(config, self.notes)

    # Each step reads its keys with `take`; whatever is left at the end is reported.
    def _refusals(self) -> None:
        claimed = {key for f in self.named for key in f.kohya.gui_keys}
        for f in self.named:
            for key in f.kohya.gui_keys:
                if self.flux and self.take(key) in (True, "true", "True", 1):  # the GUI lets one family be on
                    self.refusals.append(error(key, "and flux1_checkbox are both on: a config trains one model family",
                                               f"turn one off in the GUI (FLUX.1, or {f.label})"))
                self.take(key)
            if f is not self.family:  # Kohya reads a family's own keys only for that family
                for key in f.kohya.gui_options:
                    self.take(key)
        for key, family in REFUSED_MODEL_FLAGS.items():
            if key not in claimed and self.take(key) in (True, "true", "True", 1):
                self.refusals.append(error(key, f"{family} models cannot be trained by tui-lora",
                                           "tui-lora trains SD 1.x, SD 2.x, SDXL and FLUX.1 LoRAs"))
        self.take("flux1_checkbox")
        shared = set(self.family.kohya.gui_renames.values()) if self.family else set()  # its clip_l, t5xxl
        if not self.flux:  # Kohya reads the Flux keys only for FLUX.1 (and those a family shares with it)
            for key in _FLUX_ONLY_KEYS:
                if key not in shared:
                    self.take(key)
        self.take("sdxl_cache_text_encoder_outputs")  # renamed above when the config is SDXL

    def _model(self) -> None:
        path_raw, listed = self.take("pretrained_model_name_or_path"), self.take("model_list")
        flags = {name: self.take(name) for name in ("v2", "v_parameterization", "sdxl")}
        path = path_raw.strip() if isinstance(path_raw, str) else ""
        if not isinstance(path_raw, str) and not _is_empty(path_raw):
            self.note("pretrained_model_name_or_path", f"{_show(path_raw)} is not a model path; not imported")
        if not path and isinstance(listed, str) and listed.strip() not in ("", "custom"):
            path = listed.strip()
        typed = {name: self._flag(name, raw) for name, raw in flags.items()}
        pick = path if path in QUICK_PICKS else HUB_PICKS.get(path.lower())
        if self.family:
            self._family_model(self.family, path, pick, typed)
            return
        if self.flux:
            self._flux_model(path, pick, typed)
            return
        if pick:
            self.values["model.quick_pick"] = pick
            if path.lower() != QUICK_PICKS[pick]["path"].lower() and path != pick:
                self.note("pretrained_model_name_or_path", f"'{path}' is imported as quick pick '{pick}' "
                          f"({QUICK_PICKS[pick]['path']})", "the same model, from its current Hub location")
            implied = families.get(QUICK_PICKS[pick]["family"]).legacy_flags()
            for name, value in typed.items():
                if value is not None and value != implied[name]:
                    self.note(name, f"is {str(value).lower()} in the file, but '{path}' is "
                              f"{'' if implied[name] else 'not '}{_FLAG_WORDS[name]}; the model's own value is used")
            return
        if path:
            self.values["model.quick_pick"] = "custom"
            self.values["model.path"] = path
            known = HUB_FAMILIES.get(path.lower())
            # the old booleans are read here, once, as model.family
            flags = {name: typed[name] if typed[name] is not None else bool(value)
                     for name, value in zip(("v2", "v_parameterization", "sdxl"), known or (None, None, None))}
            self.values["model.family"] = families.from_flags(**flags)
            return
        sdxl, v2, vpred = typed["sdxl"], typed["v2"], typed["v_parameterization"]
        pick = "sdxl-base" if sdxl else ("sd21-768-v" if v2 and vpred else "sd21-base" if v2 else "sd15")
        self.values["model.quick_pick"] = pick
        self.note("pretrained_model_name_or_path", f"the file names no base model; quick pick '{pick}' "
                  "is used (it matches the file's v2/sdxl flags)", "set model.quick_pick or model.path")

    def _flux_model(self, path: str, pick: str | None, typed: Mapping[str, bool | None]) -> None:
        for name, value in typed.items():
            if value:
                self.note(name, f"is true in the file, but the file trains FLUX.1 (flux1_checkbox); {name} is ignored")
        if pick and QUICK_PICKS[pick]["family"] == FLUX:
            self.values["model.quick_pick"] = pick
        elif path and not pick:
            self.values.update({"model.quick_pick": "custom", "model.path": path, "model.family": FLUX})
        else:
            self.values["model.quick_pick"] = "flux1-dev"
            why = f"'{path}' is not a FLUX.1 model" if path else "the file names no base model"
            self.note("pretrained_model_name_or_path", f"{why}; quick pick 'flux1-dev' is used (the file trains FLUX.1)",
                      "set model.quick_pick or model.path")

    def _family_model(self, family: Any, path: str, pick: str | None, typed: Mapping[str, bool | None]) -> None:
        switch = ", ".join(family.kohya.gui_keys)
        for name, value in typed.items():
            if value:
                self.note(name, f"is true in the file, but the file trains {family.label} ({switch}); {name} is ignored")
        if pick and QUICK_PICKS[pick]["family"] == family.name:
            self.values["model.quick_pick"] = pick
        elif path and not pick:
            self.values.update({"model.quick_pick": "custom", "model.path": path, "model.family": family.name})
        else:
            default = next(name for name, source in family.quick_picks if not source.startswith("builtin-"))
            self.values["model.quick_pick"] = default
            why = f"'{path}' is not a {family.label} model" if path else "the file names no base model"
            self.note("pretrained_model_name_or_path", f"{why}; quick pick '{default}' is used (the file trains "
                      f"{family.label})", "set model.quick_pick or model.path")

    def _flag(self, name: str, raw: Any) -> bool | None:
        """One of the old v2 / v_parameterization / sdxl booleans (read only to name the family)."""
        if raw is _MISSING or _is_empty(raw):
            return None
        text = str(raw).strip().lower()
        if isinstance(raw, bool) or text in ("true", "false", "1", "0", "yes", "no"):
            return raw if isinstance(raw, bool) else text in ("true", "1", "yes")
        self.note(name, f"{_show(raw)} is not true or false; not imported")
        return None

    def _network(self) -> None:
        kohya_type = self.take("LoRA_type")
        if _is_empty(kohya_type):
            kohya_type = "Standard"
        ours = NETWORK_TYPES.get(kohya_type) if isinstance(kohya_type, str) else None
        if kohya_type == FLUX_NETWORK_TYPE:
            ours = "lora"  # sd-scripts' networks.lora_flux: a plain LoRA on FLUX.1's layers
        if ours is None and isinstance(kohya_type, str) and kohya_type in NEAREST_NETWORK_TYPES:
            ours, why = NEAREST_NETWORK_TYPES[kohya_type]
            self.note("LoRA_type", f"'{kohya_type}' is not supported: {why} (network.type: {ours})",
                      "check the learning rate and rank for the new type")
        if ours is None:
            why = REFUSED_NETWORK_TYPES.get(kohya_type, "it is not a network type tui-lora knows") \
                if isinstance(kohya_type, str) else "it is not a text"
            self.refusals.append(error("LoRA_type", f"{_show(kohya_type)} cannot be imported: {why}",
                                       "supported: " + ", ".join(t for t in NETWORK_TYPES if t != "LoCon")
                                       + "; change LoRA_type in the file (and its learning rates) and import again"))
            ours = "lora"
        if self.flux and ours != "lora":
            self.refusals.append(error("LoRA_type", f"{_show(kohya_type)} cannot be imported for FLUX.1: only a plain "
                                       "LoRA is written in the Kohya Flux form", "set LoRA_type to Flux1"))
        self.values["network.type"] = ours
        full = self._lokr_full_matrix(kohya_type)
        rank = None if full else self.put("network_dim", self.take("network_dim"))
        rank = rank or SETTINGS["network.rank"].default
        alpha_raw = self.take("network_alpha")
        if _number(alpha_raw) == 0:
            self.values["network.alpha"] = float(rank)
            self.note("network_alpha", f"0 means alpha = rank in Kohya; imported as alpha {rank}")
        else:
            self.put("network_alpha", alpha_raw)
        self._conv(kohya_type if isinstance(kohya_type, str) else "", rank)
        self._lycoris_options(kohya_type if isinstance(kohya_type, str) else "")

    def _lokr_full_matrix(self, kohya_type: Any) -> bool:
        """LyCORIS keeps a LoKr factor full once the dim reaches half its size; the GUI asks for full
        matrices everywhere with a dim of 10000 or more."""
        if kohya_type != "LyCORIS/LoKr" or (_number(self.data.get("network_dim")) or 0) < 10000:
            return False
        self.take("network_dim")
        self.values["network.lokr_full_matrix"] = True
        self.note("network_dim", f"{_show(self.data['network_dim'])} asks LyCORIS for full LoKr matrices; imported as "
                  "network.lokr_full_matrix: true (the rank is then unused, alpha ignored: scale 1)")
        return True

    def _lycoris_options(self, kohya_type: str) -> None:
        """LyCORIS network_args: imported for the types that use them, otherwise Kohya ignores them too."""
        options = {key: self.take(key) for key in ("factor", "decompose_both", "use_cp", "use_tucker", "rank_dropout_scale")}
        ours = self.values["network.type"]
        train_norm = self.take("train_norm")
        if kohya_type.startswith("LyCORIS/") and ours in ("locon", "loha", "lokr"):
            self.put("train_norm", train_norm)
        elif train_norm is not _MISSING and not _same(train_norm, False):  # the GUI passes it to LyCORIS only
            self.note("train_norm", f"{_show(train_norm)} was not imported: only LyCORIS' LoCon, LoHa and LoKr "
                      "train norm layers")
        unit = self.take("unit")
        if ours == "dylora":
            self.put("unit", unit)
            if kohya_type == "LyCORIS/DyLoRA":
                self.note("LoRA_type", "LyCORIS' DyLoRA is trained as sd-scripts' DyLoRA (network.type: dylora); the "
                          "file is a plain LoRA either way", "check network.dylora_unit (LyCORIS' block_size)")
        if kohya_type == "LyCORIS/LoKr":
            for key in ("factor", "decompose_both", "rank_dropout_scale"):
                self.put(key, options[key])
            if self.put("use_tucker", options["use_tucker"]) is not True:  # the GUI's LoKr checkbox is use_cp
                self.values.pop("network.use_tucker", None)
                self.put("use_tucker", options["use_cp"])
        elif kohya_type.startswith("LyCORIS/") and ours == "loha":
            self.put("use_tucker", options["use_tucker"])
            self.put("rank_dropout_scale", options["rank_dropout_scale"])
        elif kohya_type.startswith("LyCORIS/"):
            for key in ("use_tucker", "rank_dropout_scale"):
                if not _same(options[key], False):
                    why = ("Tucker form is only available for LoHa and LoKr" if key == "use_tucker" else
                           f"{ours}'s rank dropout always rescales the kept ranks, as Kohya's LoRA does")
                    self.note(key, f"{_show(options[key])} was not imported: {why}")

    def _conv(self, kohya_type: str, rank: int) -> None:
        conv_dim, conv_alpha = self.take("conv_dim"), self.take("conv_alpha")
        if self.values["network.type"] == "lora":
            return  # Kohya's Standard LoRA ignores conv_dim/conv_alpha too
        if self.values.get("network.lokr_full_matrix"):
            if (_number(conv_dim) or 0) < 10000 and not _is_empty(conv_dim):
                self.note("conv_dim", f"{_show(conv_dim)} is not used: with full LoKr matrices the convolutions are "
                          "kept full too", "lower network_dim below 10000 to give the layers ranks")
            return  # full matrices: the conv rank and alpha no longer matter
        if self.values["network.type"] == "dylora":
            if not (_is_empty(conv_dim) or _number(conv_dim) == 0) or kohya_type.startswith("LyCORIS/"):
                self.note("conv_dim", "tui-lora's DyLoRA adapts the attention layers only (as Kohya DyLoRA without "
                          "conv_dim); the 3×3 convolutions are not trained", "use locon for convolution layers")
            return
        lycoris = kohya_type.startswith("LyCORIS/") or kohya_type == "LoCon"
        if _is_empty(conv_dim) or _number(conv_dim) == 0:
            if lycoris:
                self.values["network.conv_rank"] = rank
                self.note("conv_dim", f"empty or 0 means 'same as network_dim' in LyCORIS; imported as conv rank {rank}")
            else:
                self.values["network.type"] = "lora"
                self.note("conv_dim", "empty or 0 means no convolution layers in Kohya LoCon; imported as network.type lora")
                return
        else:
            self.put("conv_dim", conv_dim)
        if _number(conv_alpha) == 0 or _is_empty(conv_alpha):
            conv_rank = self.values.get("network.conv_rank", SETTINGS["network.conv_rank"].default)
            alpha = self.values.get("network.alpha", 1.0) if lycoris else float(conv_rank)
            self.values["network.conv_alpha"] = alpha
            self.note("conv_alpha", f"empty or 0 means '{'network_alpha' if lycoris else 'conv rank'}' in "
                                    f"{'LyCORIS' if lycoris else 'Kohya LoCon'}; imported as conv alpha {alpha:g}")
        else:
            self.put("conv_alpha", conv_alpha)

    def _learning_rates(self) -> None:
        raw = {key: self.take(key) for key in ("learning_rate", "unet_lr", "text_encoder_lr")}
        rates = {key: _number(value) for key, value in raw.items()}
        for key, value in raw.items():
            if not _is_empty(value) and (rates[key] is None or rates[key] < 0):
                self.note(key, f"{_show(value)} is not a learning rate; read as 0 (as the Kohya GUI does)")
                rates[key] = None
        unet, te = rates["unet_lr"] or 0.0, rates["text_encoder_lr"] or 0.0
        has_unet, has_te = raw["unet_lr"] is not _MISSING, raw["text_encoder_lr"] is not _MISSING
        if unet == 0 and te == 0 and (has_unet or has_te):  # Kohya then trains both at learning_rate
            self.values["optimizer.unet_lr"] = self.values["optimizer.text_encoder_lr"] = None
        elif unet or te:  # a missing key keeps our default, which is the GUI's
            if has_unet:
                self.values["optimizer.unet_lr"] = unet
            if has_te:
                self.values["optimizer.text_encoder_lr"] = te
            if has_te and te == 0 and unet and rates["text_encoder_lr"] is None:
                self.note("text_encoder_lr", "empty means 0 when a UNet rate is set: Kohya trains the UNet only; "
                          "imported as text_encoder_lr 0 (text encoder not trained)")
            if has_unet and unet == 0:
                self.note("unet_lr", "0 with a text-encoder rate means Kohya trains the text encoder only; "
                          "imported as unet_lr 0, so the UNet's LoRA layers stay at zero")
        lr = rates["learning_rate"] or 0.0
        if lr > 0:
            self.values["optimizer.learning_rate"] = lr
        elif unet > 0 or te > 0:
            self.values["optimizer.learning_rate"] = max(unet, te)
            if "learning_rate" in self.data:
                self.note("learning_rate", f"0 is not used when the UNet/text-encoder rates are set; set to {max(unet, te):g}")
        elif raw["learning_rate"] is not _MISSING:
            self.note("learning_rate", "no learning rate is set (the Kohya GUI refuses to train); "
                      f"the default {SETTINGS['optimizer.learning_rate'].default:g} is used", "set optimizer.learning_rate")

    def _optimizer(self) -> None:
        raw = self.take("optimizer")
        eight_bit = self.take("use_8bit_adam")
        if raw is _MISSING:  # configs older than the optimizer menu: Kohya used AdamW unless use_8bit_adam
            raw = "AdamW8bit" if eight_bit in (True, "true", "True") else "AdamW"
        exact = {name.lower(): name for name in OPTIMIZERS}
        text = raw.strip() if isinstance(raw, str) else ""
        name = exact.get(text.lower()) or NEAREST_OPTIMIZERS.get(text.lower())
        if name and text.lower() in NEAREST_OPTIMIZERS:
            self.note("optimizer", f"'{text}' is not available; the nearest, {name}, is used", "check its learning rate")
        if not name:
            name = SETTINGS["optimizer.name"].default
            if not _is_empty(raw):
                self.note("optimizer", f"{_show(raw)} is not an optimizer tui-lora has; {name} is used",
                          "choose optimizer.name from: " + ", ".join(OPTIMIZERS))
                lr = self.values.get("optimizer.learning_rate", 0)
                if lr >= 0.1:
                    self.note("learning_rate", f"{lr:g} suits a learning-rate-free optimizer, not {name}", "use about 1e-4 with AdamW")
        self.values["optimizer.name"] = name
        items = _kv_items(args := self.take("optimizer_args"))
        if not items and not _is_empty(args) and args is not _MISSING:
            self.note("optimizer_args", f"{_show(args)} is not 'key=value key=value' text; not imported")
        good = []
        for item in items:
            key = item.split("=", 1)[0].strip()
            if "=" in item and key.isidentifier():
                good.append(item)
            else:
                self.note("optimizer_args", f"'{item}' is not key=value; not imported", "e.g. weight_decay=0.01")
        self.values["optimizer.extra_args"] = good
        # sd-scripts' Adafactor defaults to relative_step=True: it then picks its own step size.
        self.adafactor_relative_step = name == "Adafactor" and not any(
            re.fullmatch(r"relative_step=(False|false|0)", item) for item in good)

    def _scheduler(self) -> None:
        raw = self.take("lr_scheduler")
        text = raw.strip().lower() if isinstance(raw, str) else ""
        name = text if text in SCHEDULERS else NEAREST_SCHEDULERS.get(text)
        if text in NEAREST_SCHEDULERS:
            self.note("lr_scheduler", f"'{raw}' is not available; {name} is used")
        elif name is None and not _is_empty(raw) and raw is not _MISSING:
            self.note("lr_scheduler", f"{_show(raw)} is not a schedule tui-lora has; "
                      f"{SETTINGS['optimizer.scheduler'].default} is used", "allowed: " + ", ".join(SCHEDULERS))
        if self.adafactor_relative_step and name != "adafactor":
            self.note("lr_scheduler", "Adafactor without relative_step=False in optimizer_args picks its own step size in "
                      "Kohya (sd-scripts switches to the adafactor schedule); imported as scheduler 'adafactor'",
                      "add relative_step=False scale_parameter=False to use a fixed schedule")
            name = "adafactor"
        if name:
            self.values["optimizer.scheduler"] = name
        warmup = self.take("lr_warmup")
        if isinstance(warmup, str) and not warmup.strip():
            warmup = 0  # the GUI reads an empty warmup as 0 %
        scheduler = self.values.get("optimizer.scheduler", SETTINGS["optimizer.scheduler"].default)
        if scheduler in NO_WARMUP_SCHEDULERS and warmup is not _MISSING and (_number(warmup) or 0) > 0:
            self.note("lr_warmup", f"{_number(warmup):g} % is ignored by the '{scheduler}' schedule (in Kohya too); imported as 0")
            warmup = 0
        self.put("lr_warmup", warmup)
        for key in ("lr_scheduler_num_cycles", "lr_scheduler_power"):
            self.put(key, self.take(key))  # empty: the GUI's default (1), which is ours
        scheduler_class = self.take("lr_scheduler_type")
        if not _is_empty(scheduler_class):
            # sd-scripts: --lr_scheduler_type replaces lr_scheduler (and refuses warmup); its arguments
            # are the lr_scheduler_args
            self.put("lr_scheduler_type", scheduler_class)
            if self.values.get("optimizer.warmup_percent"):
                self.note("lr_warmup", f"{self.values['optimizer.warmup_percent']:g} % is refused by sd-scripts with "
                          "lr_scheduler_type (a scheduler class has no warmup); imported as 0")
            self.values["optimizer.warmup_percent"] = 0.0
            items = _kv_items(args := self.take("lr_scheduler_args"))
            if items:
                self.values["optimizer.scheduler_args"] = items
            elif not _is_empty(args) and args is not _MISSING:
                self.note("lr_scheduler_args", f"{_show(args)} is not 'key=value' text; not imported")
            return
        for item in _kv_items(args := self.take("lr_scheduler_args")):
            key, _, value = item.partition("=")
            if key == "step_rules" and value:
                self.values["optimizer.step_rules"] = value
            else:
                self.note("lr_scheduler_args", f"scheduler argument '{item}' has no counterpart; not imported")
        if not _kv_items(args) and not _is_empty(args) and args is not _MISSING:
            self.note("lr_scheduler_args", f"{_show(args)} is not 'key=value' text; not imported")

    def _epochs(self) -> None:
        self.put("epoch", self.take("epoch"))
        max_epochs = self.put("max_train_epochs", self.take("max_train_epochs"))
        self.values.pop("training.max_train_epochs", None)
        if max_epochs:
            self.values["training.epochs"] = max_epochs
            self.note("max_train_epochs", f"replaces epoch ({_show(self.data.get('epoch'))}) in Kohya; "
                      f"imported as training.epochs {max_epochs}")
        steps = self.put("max_train_steps", self.take("max_train_steps"))
        if max_epochs and steps:  # sd-scripts: max_train_epochs recomputes max_train_steps
            self.values.pop("training.max_train_steps", None)
            self.note("max_train_steps", f"Kohya ignores it when max_train_epochs is set; the run has {max_epochs} epochs")

    def _attention(self) -> None:
        raw, mem_eff = self.take("xformers"), self.take("mem_eff_attn") in (True, "True", "true")
        if isinstance(raw, bool):  # configs older than the attention menu
            text = "xformers" if raw else "none"
        elif raw is _MISSING or raw is None:
            text = ""
        else:
            text = raw.strip().lower() if isinstance(raw, str) else None
        if text in ("xformers", "sdpa"):
            self.values["training.attention"] = text
            return
        self.values["training.attention"] = "sdpa"
        if text not in ("none", ""):
            self.note("xformers", f"{_show(raw)} is not none/sdpa/xformers; sdpa is used")
        elif text == "none" or mem_eff:
            self.note("mem_eff_attn" if mem_eff else "xformers", "Kohya used its own attention code; tui-lora uses "
                      "PyTorch's scaled-dot-product attention (the same maths, faster, less memory)")

    def _sampling(self) -> None:
        raw = self.take("sample_prompts")
        lines = raw.splitlines() if isinstance(raw, str) else raw if isinstance(raw, list) else None
        if lines is None or not all(isinstance(line, str) for line in lines):
            if not _is_empty(raw) and raw is not _MISSING:
                self.note("sample_prompts", f"{_show(raw)} is not prompt text; not imported")
            self.values["sampling.prompts"] = []
        else:
            # sd-scripts strips each line and skips blank ones and '#' comments.
            numbered = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip() and not line.strip().startswith("#")]
            if len(numbered) == 1 and " " not in numbered[0][1] and numbered[0][1].lower().endswith((".txt", ".toml", ".json")):
                self.note("sample_prompts", f"'{numbered[0][1]}' is a prompt file; tui-lora does not read it",
                          "copy its prompts into sampling.prompts")
                numbered = []
            self.values["sampling.prompts"] = [p for n, line in numbered if (p := self._prompt(line, n)) is not None]
        sampler = self.take("sample_sampler")
        text = sampler.strip().lower() if isinstance(sampler, str) else ""
        if text in SAMPLERS:
            self.values["sampling.sampler"] = SAMPLERS[text]
        elif text in NEAREST_SAMPLERS:
            self.values["sampling.sampler"] = NEAREST_SAMPLERS[text]
            self.note("sample_sampler", f"'{sampler}' is not available; {NEAREST_SAMPLERS[text]} is used")
        elif not _is_empty(sampler) and sampler is not _MISSING:
            self.note("sample_sampler", f"{_show(sampler)} is not a sampler tui-lora has; the default is used")

    def _prompt(self, line: str, number: int) -> Any:
        """One prompt line with sd-scripts' options → a prompt entry; what cannot be read is noted."""
        entry, dropped = parse_prompt_line(line, number)
        for message in dropped:
            self.note("sample_prompts", f"{message}; not imported", OPTIONS_HINT if "unknown option" in message else "")
        return entry

    def _special_values(self) -> None:
        """Keys whose Kohya meaning differs from a plain copy."""
        if self.take("sdxl_cache_text_encoder_outputs") in (True, "true", "True"):
            # A frozen text encoder's outputs are encoded once per caption by tui-lora anyway; sd-scripts
            # refuses the option when the text encoder is trained.
            if self.values.get("optimizer.text_encoder_lr") != 0:
                self.note("sdxl_cache_text_encoder_outputs", "only works with a frozen text encoder (sd-scripts "
                          "refuses it otherwise); the text encoder is trained here, so it is not used",
                          "set text_encoder_lr to 0 to train the UNet only")
        ext = self.take("caption_extension")
        if isinstance(ext, str) and not ext.strip():
            self.values["training.caption_extension"] = ".caption"
            self.note("caption_extension", "empty means '.caption' files in Kohya; imported as .caption")
        else:
            self.put("caption_extension", ext)
        model_as = self.take("save_model_as")
        if isinstance(model_as, str) and model_as.strip().lower() in ("diffusers", "diffusers_safetensors", "same as source model"):
            self.note("save_model_as", f"'{model_as}' does not apply to LoRA files (the Kohya GUI uses safetensors too); "
                      "imported as safetensors")
            model_as = "safetensors"
        self.put("save_model_as", model_as)
        resolution = self.take("max_resolution")
        if _number(resolution) is not None:  # one number means a square
            resolution = f"{resolution},{resolution}"
        self.put("max_resolution", resolution)
        clip_skip = self.take("clip_skip")
        self.put("clip_skip", 1 if _number(clip_skip) == 0 else clip_skip)
        to_disk = self.put("cache_latents_to_disk", self.take("cache_latents_to_disk"))
        cached = self.put("cache_latents", self.take("cache_latents"))
        if to_disk and cached is False:
            self.values["training.cache_latents"] = True
            self.note("cache_latents", "false, but cache_latents_to_disk is true, which turns caching on in Kohya; "
                      "imported as cache_latents true")
        self._noise_kind()
        self._vae_and_buckets()
        stop = self.put("stop_text_encoder_training", self.take("stop_text_encoder_training"))
        if stop and self.values.get("optimizer.text_encoder_lr", 1) != 0:
            self.note("stop_text_encoder_training", f"the Kohya GUI's LoRA tab ignores this; here the text encoder "
                      f"stops training at {stop:g} % of the steps", "set it to 0 to train the text encoder throughout")
        log_with, use_wandb = self.take("log_with"), self.take("use_wandb")
        if _is_empty(log_with) and use_wandb in (True, "True", "true"):
            log_with = "wandb"
        self.put("log_with", log_with)

    def _vae_and_buckets(self) -> None:
        # tui-lora always encodes with the VAE in fp32 (engine/train/setup.py), which is what
        # sdxl_no_half_vae / no_half_vae ask for; false would only save a little memory.
        self.take("sdxl_no_half_vae")
        self.take("no_half_vae")
        steps = self.take("bucket_reso_steps")
        if _number(steps) is not None and 0 < _number(steps) < 8:
            self.values["buckets.step"] = 8
            self.note("bucket_reso_steps", f"{_show(steps)}: Kohya warns and goes on; bucket sides must be multiples of 8 "
                      "for the VAE, so it is imported as buckets.step 8")
        else:
            self.put("bucket_reso_steps", steps)

    def _noise_kind(self) -> None:
        """The GUI passes either the noise offset keys or the multires ones, by noise_offset_type."""
        offset_keys = ("noise_offset", "adaptive_noise_scale", "noise_offset_random_strength")
        multires_keys = ("multires_noise_iterations", "multires_noise_discount")
        used, unused = (offset_keys, multires_keys) if SCOPES["noise"](self.data) else (multires_keys, offset_keys)
        if self.data.get("noise_offset_type") == NOISE_BOTH:
            used, unused = offset_keys + multires_keys, ()
        for key in used:
            self.put(key, self.take(key))
        for key in unused:
            value = self.take(key)
            if self.flux:
                continue  # FLUX.1 draws plain noise: neither kind is used
            if key in ("noise_offset", "adaptive_noise_scale", "multires_noise_iterations") and (_number(value) or 0) != 0:
                self.note(key, f"{_show(value)} is ignored with noise_offset_type {_show(self.data.get('noise_offset_type', 'Original'))} "
                          "(in Kohya too); not imported")
        self.take("noise_offset_type")
        if _number(self.data.get("max_timestep")) == 0:  # the GUI's 0: not passed, sd-scripts' default
            self.take("max_timestep")

    def _mapped_keys(self) -> None:
        """Every remaining key with a direct counterpart in the schema."""
        for kohya_key in _BY_KOHYA:
            if kohya_key in self.left:
                self.put(kohya_key, self.take(kohya_key))

    def _family_no_counterpart(self) -> dict[str, tuple[Any, str]]:
        """{GUI key: (the GUI's default, what the feature is)} of the family this config trains."""
        if self.family is None:
            return {}
        return {key: (default, feature) for feature, keys in self.family.kohya.no_counterpart for key, default in keys.items()}

    def _paths(self) -> None:
        for key in PATH_KEYS:
            value = self.data.get(key)
            if isinstance(value, str) and _WINDOWS_PATH.search(value.strip()):
                self.note(key, f"'{value}' is a Windows path", "change it to where the files are on this machine")

    def _unmapped_keys(self) -> None:
        for key in list(self.left):
            value = self.take(key)
            if key.startswith("_"):
                continue
            own = self._family_no_counterpart().get(key)
            if own is not None:
                if not _same(value, own[0]):
                    self.note(key, f"{own[1]} has no counterpart in tui-lora; {_show(value)} was not imported")
                continue
            known = NO_COUNTERPART.get(key)
            if known is None:
                if not _is_empty(value):
                    self.note(key, f"is not a Kohya LoRA setting tui-lora knows; {_show(value)} was not imported")
                else:
                    self.note(key, "is not a Kohya LoRA setting tui-lora knows; not imported")
                continue
            default, feature, scope = known
            if _same(value, default) or not SCOPES[scope](self.data):
                continue
            shown = "its value" if key in SECRET_KEYS else _show(value)
            self.note(key, f"{feature} has no counterpart in tui-lora; {shown} was not imported")


_FLAG_WORDS = {"v2": "an SD 2.x model", "v_parameterization": "a v-prediction model", "sdxl": "an SDXL model"}


# --- public API -------------------------------------------------------------------------------

def convert_kohya_settings(data: Mapping[str, Any], source: str = "Kohya config") -> ImportResult:
    """Convert an already-loaded Kohya GUI config; ProblemError when it cannot be imported at all."""
    if not isinstance(data, Mapping):
        raise ProblemError([error(source, "must be a JSON object ({…}) of Kohya settings", "is this a Kohya SS GUI config?")])
    result = _Conversion(data).run()
    result.source = source
    return result


def read_kohya_file(path: str | Path) -> dict[str, Any]:
    """The file's JSON object; ProblemError naming the file when it cannot be read as one."""
    name = str(path)
    data = read_regular_file(path, MAX_KOHYA_FILE_BYTES, what="Kohya config",
                             too_large=f"is larger than {MAX_KOHYA_FILE_BYTES // 1_000_000} MB",
                             hint="a Kohya config is a few kB; is this the right file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ProblemError([error(name, "is not UTF-8 text", "give the .json file the Kohya GUI saved")]) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProblemError([error(f"{name} line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}",
                                  "give the .json file the Kohya GUI saved")]) from None
    except (RecursionError, ValueError):
        raise ProblemError([error(name, "not valid JSON (nested too deeply)", "give the .json file the Kohya GUI saved")]) from None
    if not isinstance(document, dict):
        raise ProblemError([error(name, "must be a JSON object ({…}) of Kohya settings", "is this a Kohya SS GUI config?")])
    return document


def import_kohya_config(path: str | Path) -> ImportResult:
    """Read and convert a Kohya SS GUI `.json` config or preset."""
    return convert_kohya_settings(read_kohya_file(path), source=str(path))


def _comment(text: str) -> str:
    """One YAML comment line: line breaks and characters YAML refuses become escapes."""
    def safe(char: str) -> str:
        code = ord(char)
        printable = code == 9 or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000
        return char if printable and char not in "\u2028\u2029" else ascii(char)[1:-1]
    return "# " + "".join(safe(char) for char in text)


def imported_yaml(result: ImportResult) -> str:
    """The run file's text, headed by comments listing how it was imported."""
    head = [_comment(f"Imported from the {result.kind} {result.source or '(unnamed)'} by `tui-lora import-kohya`.")]
    if result.notes:
        head.append(_comment("Import notes:"))
        head += [_comment(f"  {note}") for note in result.notes]
    return "\n".join(head) + "\n" + dump_run_yaml(result.config)


def write_imported(result: ImportResult, out_path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the run file atomically; never replaces an existing file unless `overwrite`."""
    try:
        return write_text_atomic(out_path, imported_yaml(result), overwrite=overwrite)
    except FileExistsError:
        raise ProblemError([error(str(out_path), "already exists; it was not replaced",
                                  "use --force to replace it, or give another output file")]) from None
    except IsADirectoryError:
        raise ProblemError([error(str(out_path), "is a folder", "give a file name such as run.yaml")]) from None
    except OSError as exc:
        raise ProblemError([error(str(out_path), f"cannot be written: {exc.strerror or exc}", "")]) from None
