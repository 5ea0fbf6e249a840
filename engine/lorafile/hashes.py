"""The `sshs_model_hash` / `sshs_legacy_hash` values sd-scripts stores in its LoRA files.

sd-scripts precomputes the two hashes the sd-webui-additional-networks extension indexes files by,
so that extension need not read the whole file. It serialises the (already dtype-converted)
tensors with only the `ss_*` metadata (user-editable keys would change the hash), then:

* model hash: SHA-256 (hex) of everything after the header, i.e. the tensor bytes. safetensors
  lays tensors out in a fixed order whatever the metadata, so this equals the hash of the data
  part of the file actually written.
* legacy hash: the first 8 hex digits of SHA-256 of the 64 KiB at offset 1 MiB of that
  serialisation (header included), the old A1111 "model hash" scheme. For files under 1 MiB
  this is the hash of no bytes.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

import torch
from safetensors.torch import save as safetensors_save

_LEGACY_OFFSET = 0x100000
_LEGACY_LENGTH = 0x10000


def data_offset(serialized: bytes) -> int:
    """Where the tensor bytes start in a safetensors serialisation: 8-byte length + header."""
    return 8 + int.from_bytes(serialized[:8], "little")


def model_hash_of_bytes(serialized: bytes) -> str:
    return hashlib.sha256(serialized[data_offset(serialized):]).hexdigest()


def legacy_hash_of_bytes(serialized: bytes) -> str:
    window = serialized[_LEGACY_OFFSET:_LEGACY_OFFSET + _LEGACY_LENGTH]
    return hashlib.sha256(window).hexdigest()[:8]


def training_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """The part of the metadata the hashes cover: `ss_*` keys only."""
    return {k: v for k, v in metadata.items() if k.startswith("ss_")}


def sshs_hashes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) for tensors exactly as they will be saved."""
    serialized = safetensors_save(dict(tensors), training_metadata(metadata))
    return model_hash_of_bytes(serialized), legacy_hash_of_bytes(serialized)
