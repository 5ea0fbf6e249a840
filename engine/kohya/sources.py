"""What a Kohya file is, and its import: a GUI .json, sd-scripts options in a .json, a
`--config_file` TOML, a `--dataset_config` TOML, or a saved command line.

`read_source` only reads and recognises the file (errors: the file cannot be read as any of
them); `convert_source` imports it (errors: it is not a LoRA config, or it trains a model
tui-lora has no family for). Every kind ends in the one Kohya GUI conversion
(`engine.config.kohya_import`), so a value means the same whichever way it came in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import read_regular_file
from ..config.kohya_tables import SCOPES, number
from ..config.kohya_import import MAX_KOHYA_FILE_BYTES, ImportResult, convert_kohya_settings, read_kohya_file
from ..config.runconfig import SETTINGS, RunConfig
from ..families import REGISTRY
from ..plan import scan_for
from ..problems import Problem, ProblemError, error, warning
from .command_line import LAUNCHER_KEYS, looks_like_command, parse_command
from .dataset_config import DatasetImport, is_dataset_config, read_dataset_config
from .script_options import MODULE_HINT, Translation, ignored_note, translate
from .tables import LORA_GUI_KEYS, NOT_LORA_GUI_KEYS, SCRIPT_FAMILIES, TRAINER_IGNORES, UNKNOWN_FAMILY_SCRIPTS
from .toml_config import flatten_config, parse_toml, read_toml

_NOISE_KIND = {"noise_offset": True, "adaptive_noise_scale": True, "multires_noise_iterations": False}
GUI_JSON, SCRIPT_JSON, CONFIG_TOML, DATASET_TOML, COMMAND = "gui", "script_json", "config_toml", "dataset_toml", "command"
KIND_NAMES = {GUI_JSON: "Kohya SS GUI config", SCRIPT_JSON: "sd-scripts options (JSON)",
              CONFIG_TOML: "sd-scripts --config_file TOML", DATASET_TOML: "sd-scripts --dataset_config TOML",
              COMMAND: "sd-scripts command line"}
# Keys only the GUI saves, and option names only sd-scripts uses: together they tell the two JSONs apart.
_GUI_MARKERS = ("LoRA_type", "max_resolution", "optimizer", "epoch", "model_list", "lr_warmup")
_SCRIPT_MARKERS = ("network_module", "optimizer_type", "resolution", "network_args", "dataset_config")


@dataclass
class Source:
    kind: str
    path: Path
    document: Any = None  # the JSON object, the TOML document or the command text
    script: str = ""
    notes: list[Problem] = field(default_factory=list)


def read_source(path: str | Path) -> Source:
    """Read and recognise a Kohya file; ProblemError naming it when it is none of the known kinds."""
    path = Path(path)
    name = str(path)
    raw = read_regular_file(path, MAX_KOHYA_FILE_BYTES, what="Kohya config",
                            too_large=f"is larger than {MAX_KOHYA_FILE_BYTES // 1_000_000} MB",
                            hint="a Kohya config is a few kB; is this the right file?")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ProblemError([error(name, "is not UTF-8 text", "give the .json, .toml or command file Kohya uses")]) from None
    start, suffix = text.lstrip()[:1], path.suffix.lower()
    # '[' opens a JSON list and a TOML table: TOML when it parses as one
    if suffix == ".json" or start == "{" or (start == "[" and suffix != ".toml" and not _is_toml(text)):
        document = read_kohya_file(path)  # its errors name JSON's line and column
        kind = SCRIPT_JSON if _is_script_json(document) else GUI_JSON
        return Source(kind, path, document)
    if path.suffix.lower() != ".toml" and looks_like_command(text):
        return Source(COMMAND, path, text)
    try:
        document = parse_toml(text, name)
    except ProblemError:
        if path.suffix.lower() == ".toml":
            raise
        raise ProblemError([error(name, "is not a Kohya GUI .json, an sd-scripts .toml, or a command line "
                                        "naming train_network.py", "give the file Kohya or sd-scripts reads")]) from None
    return Source(DATASET_TOML if is_dataset_config(document) else CONFIG_TOML, path, document)


def _is_toml(text: str) -> bool:
    try:
        parse_toml(text, "")
    except ProblemError:
        return False
    return True


def _is_script_json(document: Mapping[str, Any]) -> bool:
    return not any(key in document for key in _GUI_MARKERS) and any(key in document for key in _SCRIPT_MARKERS)


def convert_source(source: Source) -> ImportResult:
    """Import a recognised file; ProblemError when it cannot be imported (nothing is written then)."""
    name = str(source.path)
    if source.kind == GUI_JSON:
        _refuse_other_tabs(source.document, name)
        result = convert_kohya_settings(source.document, source=name)
        result.kind = KIND_NAMES[GUI_JSON]
        result.notes = _ignored_by_trainer(source.document, result.config.model.family) + result.notes
        return result
    base = source.path.parent
    options: dict[str, Any] = {}
    script = ""
    dataset: DatasetImport | None = None
    launcher: dict[str, Any] = {}
    if source.kind == COMMAND:
        command = parse_command(source.document, name)
        script, launcher = command.script, command.launcher
        options = dict(command.options)
        if isinstance(options.get("config_file"), str):  # flags on the line win over the file (as in sd-scripts)
            options = {**flatten_config(read_toml(_near(options["config_file"], base), "--config_file TOML")), **options}
    elif source.kind == DATASET_TOML:
        dataset = read_dataset_config(source.document, name)
    else:
        options = flatten_config(source.document) if source.kind == CONFIG_TOML else dict(source.document)
        _refuse_text_inversion(options, name)
    if isinstance(options.get("dataset_config"), str):
        path = _near(options["dataset_config"], base)
        dataset = read_dataset_config(read_toml(path, "--dataset_config TOML"), str(path))
    _refuse_missing_family(script, name)
    translation = Translation() if source.kind == DATASET_TOML else translate(options, script=script, base_dir=base)
    gui = translation.gui
    for key in LAUNCHER_KEYS:
        if key in launcher and key != "mixed_precision":
            gui.setdefault(key, launcher[key])
    if dataset is not None:  # sd-scripts: a dataset config replaces train_data_dir, reg_data_dir and their options
        for key in ("train_data_dir", "reg_data_dir"):
            if gui.pop(key, None) and source.kind != DATASET_TOML:
                translation.note(key, "is not used by sd-scripts with a dataset config; its subsets' folders are imported")
        gui.update(dataset.gui)
    if source.kind == DATASET_TOML:  # only the dataset is known: the rest keeps tui-lora's defaults
        gui.setdefault("optimizer", SETTINGS["optimizer.name"].default)
    try:
        result = convert_kohya_settings(gui, source=name)
    except ProblemError as exc:  # name the sd-scripts option the refused value came from
        problems = [Problem(p.field, p.message, MODULE_HINT, p.severity) if p.field == "LoRA_type" else p
                    for p in exc.problems]
        raise ProblemError(_renamed(problems, translation.renamed)) from None
    result.kind = KIND_NAMES[source.kind]
    result.notes = translation.notes + (dataset.notes if dataset else []) + _renamed(result.notes, translation.renamed)
    result.notes = [Problem(n.field, n.message.replace("is not a Kohya LoRA setting", "is not an sd-scripts LoRA option"),
                            n.hint, n.severity) for n in result.notes]
    if dataset is not None and dataset.values:
        result.config = RunConfig({**result.config.values, **dataset.values})
    if translation.zero_seed:
        result.config = RunConfig({**result.config.values, "training.seed": 0})
    if not script and source.kind != DATASET_TOML:
        _family_from_the_model(result)
    if translation.warmup_steps:
        _warmup_from_images(result, translation.warmup_steps)
    if "mixed_precision" in launcher and launcher["mixed_precision"] != gui.get("mixed_precision"):
        result.notes.append(warning("mixed_precision", f"accelerate's --mixed_precision {launcher['mixed_precision']} "
                                    "is overridden by the script's own (sd-scripts passes its value to accelerate)"))
    return result


def import_kohya_file(path: str | Path) -> ImportResult:
    return convert_source(read_source(path))


def _family_from_the_model(result: ImportResult) -> None:
    """sd-scripts options read without their script (a config TOML, a JSON) do not say whether
    train_network.py or sdxl_train_network.py runs them: a model file of our own then names its
    family itself (model.family: auto) rather than being taken for the plain script's family."""
    values = result.config.values
    plain = SCRIPT_FAMILIES["train_network"][0]
    if values["model.quick_pick"] != "custom" or values["model.family"] != plain:
        return
    result.config = RunConfig({**values, "model.family": "auto"})
    result.notes.append(warning("model.family", "the file does not name its sd-scripts script, so the family is read "
                                "from the model file when training starts (auto)",
                                "set model.family, or import the command line that runs sdxl_/flux_train_network.py"))


def _warmup_from_images(result: ImportResult, steps: int) -> None:
    """Warmup given in steps, for a run that lasts some epochs: its share of the run's steps, counted
    from the images as the run will count them (image headers only), or 0 with a note when they
    cannot be read here."""
    config = result.config
    try:
        total = scan_for(config).total_steps if config.folders.images else 0
    except ProblemError:
        total = 0
    if total:
        percent = round(100 * min(steps, total) / total, 6)
        result.config = RunConfig({**config.values, "optimizer.warmup_percent": percent})
        result.notes.append(warning("lr_warmup_steps", f"{steps} of the run's {total} steps (counted from the images "
                                    f"in folders.images) imported as optimizer.warmup_percent {percent:g}"))
        return
    result.notes.append(warning("lr_warmup_steps", f"{steps} warmup steps: tui-lora sets warmup as a share of the "
                                "run's steps, which depend on images this machine cannot read; imported as 0",
                                "set optimizer.warmup_percent (tui-lora validate prints the run's steps)"))


def _ignored_by_trainer(document: Mapping[str, Any], family: str) -> list[Problem]:
    """The GUI's values sd-scripts' trainer for this family reads but does not use: named, not dropped silently."""
    trainer, keys = TRAINER_IGNORES.get(family, ("", ()))
    by_kohya = SETTINGS.by_kohya_key()
    offset_kind = SCOPES["noise"](document)  # the GUI passes the offset noise keys or the multires ones
    notes = []
    for key in keys:
        value = document.get(key)
        if key in _NOISE_KIND and _NOISE_KIND[key] != offset_kind or value in (None, "", False):
            continue
        default = by_kohya[key].default if key in by_kohya else None
        if number(value) in (0, number(default)) or value == default:
            continue
        notes.append(ignored_note(key, value, trainer))
    return notes


def _near(reference: str, base: Path) -> Path:
    """A file a command or config names: as given when it exists, else beside the naming file."""
    path = Path(reference).expanduser()
    return path if path.is_absolute() or path.exists() else base / path


def _renamed(notes: list[Problem], renamed: Mapping[str, str]) -> list[Problem]:
    """The conversion's notes name GUI keys; name the sd-scripts option the value came from instead."""
    return [Problem(renamed.get(n.field, n.field), n.message, n.hint, n.severity) if n.field in renamed else n
            for n in notes]


def _refuse_other_tabs(document: Mapping[str, Any], name: str) -> None:
    if any(key in document for key in LORA_GUI_KEYS):
        return
    for key, what in NOT_LORA_GUI_KEYS.items():
        if key in document:
            raise ProblemError([error(name, f"is a config for {what}, not a LoRA (it has '{key}' and no LoRA_type)",
                                      "save the settings from the GUI's LoRA tab, or set up the LoRA in the wizard "
                                      "(`tui-lora`) with the same folders and model")])


def _refuse_text_inversion(options: Mapping[str, Any], name: str) -> None:
    for key in ("token_string", "init_word", "num_vectors_per_token"):
        if key in options:
            raise ProblemError([error(name, f"holds '{key}': it configures a textual inversion embedding, not a LoRA",
                                      "tui-lora trains LoRAs; use train_network.py options")])


def _refuse_missing_family(script: str, name: str) -> None:
    if script in UNKNOWN_FAMILY_SCRIPTS:  # a LoRA script of a family this tui-lora has no package for
        trains = ", ".join(dict.fromkeys(family.label for family in REGISTRY.values()))
        raise ProblemError([error(name, f"{script}.py trains {UNKNOWN_FAMILY_SCRIPTS[script]} LoRAs, which this "
                                  "tui-lora cannot train yet",
                                  f"tui-lora trains {trains} LoRAs: use " + ", ".join(f"{s}.py" for s in SCRIPT_FAMILIES))])
