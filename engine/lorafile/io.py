"""Save and read LoRA files in the Kohya/A1111 layout.

The neutral structure both directions use is `Weights`:
`{component: {module_path: {suffix: tensor}}}` with component "unet" / "text_encoder" /
"text_encoder_2", module paths as the model's `named_modules()` gives them, and Kohya's suffixes
(`lora_down.weight`, `lora_up.weight`, `alpha`, LyCORIS `hada_w1_a`, `lokr_w1`, ...).

Saving is atomic: bytes go to a hidden temporary file in the destination folder, are flushed to
disk, and only then renamed over the destination, so a kill or a full disk never leaves a
truncated file where a good one was.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
from pathlib import Path
from typing import Any, Callable, Collection, Literal, Mapping, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save

from engine.atomic import write_bytes_atomic
from engine.lorafile.hashes import sshs_hashes
from engine.lorafile.names import Family, KohyaNames, UnknownKeyError, match_model_paths
from engine.problems import ProblemError, error

Weights = dict[str, dict[str, dict[str, torch.Tensor]]]
FileFormat = Literal["safetensors", "ckpt"]

# Suffixes Kohya's LoRA and LyCORIS write after the module prefix.
KNOWN_SUFFIXES = frozenset({
    "lora_down.weight", "lora_up.weight", "lora_mid.weight", "alpha", "dora_scale",
    "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
    "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
    "diff", "diff_b",
    "w_norm", "b_norm",  # LyCORIS train_norm: weight / bias offsets of a norm layer
})
_MAX_LISTED = 5


class LoraFile(NamedTuple):
    weights: Weights
    metadata: dict[str, str]
    family_guess: Family | None


def to_state_dict(weights: Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]], *, family: Family,
                  unet_config: Any = None, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Flat Kohya state dict (`<prefix>.<suffix>` -> CPU tensor in `dtype`) from `Weights`."""
    names = KohyaNames(family, unet_config)
    state: dict[str, torch.Tensor] = {}
    for component, modules in weights.items():
        for module_path, tensors in modules.items():
            prefix = names.prefix(component, module_path)  # type: ignore[arg-type]
            for suffix, tensor in tensors.items():
                if suffix not in KNOWN_SUFFIXES:
                    raise ValueError(f"{component}:{module_path}: unknown LoRA suffix {suffix!r}")
                key = f"{prefix}.{suffix}"
                if key in state:
                    raise ValueError(f"two modules map to the same Kohya key {key}")
                value = tensor.detach().to("cpu")
                if dtype is not None:
                    value = value.to(dtype)
                # Own, contiguous storage: safetensors refuses views that share memory.
                state[key] = value.contiguous().clone()
    return state


def _serialize(state: dict[str, torch.Tensor], metadata: Mapping[str, str], fmt: FileFormat) -> tuple[bytes, dict[str, str]]:
    if fmt == "ckpt":
        buffer = io.BytesIO()
        torch.save(state, buffer)  # as Kohya does: the state dict alone, no metadata
        return buffer.getvalue(), {}
    saved = {k: v for k, v in metadata.items() if not k.startswith("sshs_")}
    model_hash, legacy_hash = sshs_hashes(state, saved)
    saved["sshs_model_hash"] = model_hash
    saved["sshs_legacy_hash"] = legacy_hash
    return safetensors_save(state, saved), saved


def _disk_problem(path: Path, exc: OSError) -> ProblemError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        message, hint = "the disk is full, so the LoRA file could not be written", "free some space in that folder and save again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        message, hint = "no permission to write the LoRA file there", "choose an output folder you can write to"
    else:
        message, hint = f"could not write the LoRA file: {exc.strerror or exc}", "check the output folder"
    return ProblemError([error(str(path), message + "; any earlier file there is unchanged", hint)])


def write_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` all at once; on failure the old file (if any) is untouched."""
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise _disk_problem(Path(path), exc) from exc


def save_lora_file(path: str | os.PathLike[str], weights: Weights, *, family: Family, unet_config: Any = None,
                   metadata: Mapping[str, str], save_dtype: torch.dtype, fmt: FileFormat = "safetensors") -> dict[str, str]:
    """Write `weights` as a Kohya-format LoRA file, atomically. Returns the metadata written.

    For safetensors the metadata gains `sshs_model_hash` / `sshs_legacy_hash` computed on the
    tensors as saved (in `save_dtype`); `.ckpt` keeps no metadata (returns {}).
    Raises ProblemError when the disk refuses the write.
    """
    if fmt not in ("safetensors", "ckpt"):
        raise ValueError(f"unknown LoRA file format {fmt!r}")
    not_text = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if not_text:
        raise ValueError(f"metadata values must be strings: {not_text[:_MAX_LISTED]}")
    state = to_state_dict(weights, family=family, unet_config=unet_config, dtype=save_dtype)
    data, written = _serialize(state, metadata, fmt)
    write_atomically(path, data)
    return written


# -- reading ---------------------------------------------------------------------------------------

def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            return {key: handle.get_tensor(key) for key in handle.keys()}, metadata
    except (SafetensorError, ValueError, OSError) as exc:
        raise ProblemError([error(
            str(path), f"not a readable safetensors file ({exc})",
            "the file may be truncated or in another format; save or download it again")]) from exc


def _load_pickle(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ProblemError([error(
            str(path), "the .ckpt file holds Python objects besides tensors and was not loaded, for safety",
            "convert it to .safetensors with the tool that made it")]) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ProblemError([error(str(path), f"not a readable .ckpt file ({exc})",
                                  "the file may be truncated; save or download it again")]) from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ProblemError([error(str(path), "the .ckpt file does not hold a LoRA state dict",
                                  "pick the LoRA file written by the trainer")])
    return loaded


def guess_family(state_keys: Collection[str], state: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
                 read_name: Callable[[Mapping[str, str]], str | None] | None = None) -> Family | None:
    """Base family from the keys (SDXL structure), then metadata (`read_name`: the family registry's
    reader, `engine.families.read_family`), then SD2's linear proj_in."""
    if any(k.startswith(("lora_te1_", "lora_te2_")) for k in state_keys) or any(
            k.startswith("lora_unet_") and ("input_blocks" in k or "output_blocks" in k or "middle_block" in k)
            for k in state_keys):
        return "sdxl"
    named = read_name(metadata) if read_name is not None else None
    if named is not None:
        return named  # type: ignore[return-value]
    # SD 2.x transformers use a Linear proj_in, SD 1.x a 1x1 Conv: structure, not widths.
    for key in state_keys:
        if key.startswith("lora_unet_") and key.endswith("proj_in.lora_down.weight"):
            return "sd2" if state[key].dim() == 2 else "sd1"
    if metadata.get("ss_v2") == "False" and any(k.startswith("lora_te_") for k in state_keys):
        return "sd1"
    return None


def read_lora_file(path: str | os.PathLike[str], *, unet_config: Any = None,
                   module_names: Mapping[str, Collection[str]] | None = None,
                   read_name: Callable[[Mapping[str, str]], str | None] | None = None) -> LoraFile:
    """Read a Kohya-format LoRA (ours or sd-scripts'/LyCORIS', SD1/SD2/SDXL) into `Weights`.

    `unet_config` renumbers SDXL LDM block names (default: the real SDXL base layout).
    `module_names` ({component: model's named_modules() names}) checks every module exists in
    the model and returns paths in that model's spelling. `read_name` reads the family a file's
    metadata names (`engine.families.read_family`). Unknown keys raise ProblemError.
    """
    source = Path(path)
    if not source.is_file():
        raise ProblemError([error(str(source), "LoRA file not found", "check the path")])
    if source.suffix.lower() == ".safetensors":
        state, metadata = _load_safetensors(source)
    elif source.suffix.lower() in (".ckpt", ".pt", ".pth"):
        state, metadata = _load_pickle(source), {}
    else:
        raise ProblemError([error(str(source), f"unsupported LoRA file type '{source.suffix}'",
                                  "use a .safetensors (or .ckpt) file")])
    family = guess_family(state.keys(), state, metadata, read_name)
    # Parsing accepts every family's spelling; only LDM block numbers need a (SDXL) UNet config.
    names = KohyaNames("sdxl", unet_config) if unet_config is not None else KohyaNames("sd1")

    weights: Weights = {}
    unknown: list[str] = []
    missing_in_model: list[str] = []
    for key, tensor in state.items():
        prefix, _, suffix = key.partition(".")
        if suffix not in KNOWN_SUFFIXES:
            unknown.append(key)
            continue
        try:
            component, module_path = names.parse(prefix)
        except UnknownKeyError:
            unknown.append(key)
            continue
        if module_names is not None:
            resolved = match_model_paths(component, module_path, module_names.get(component, ()))
            if resolved is None:
                missing_in_model.append(key)
                continue
            module_path = resolved
        weights.setdefault(component, {}).setdefault(module_path, {})[suffix] = tensor
    problems = []
    if unknown:
        problems.append(error(str(source), f"{len(unknown)} keys are not Kohya LoRA keys: {_sample(unknown)}",
                              "pick a LoRA for SD 1.x, 2.x or XL in the Kohya/A1111 layout; full checkpoints "
                              "and LoRAs for other model types cannot be used"))
    if missing_in_model:
        problems.append(error(str(source), f"{len(missing_in_model)} keys name layers this model does not have: "
                                           f"{_sample(missing_in_model)}",
                              "the LoRA was trained for another base model; pick one made for this model"))
    if problems:
        raise ProblemError(problems)
    return LoraFile(weights, metadata, family)


def _sample(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f" (and {len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")

