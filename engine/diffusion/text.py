"""Captions to the UNet's conditioning: token chunks, CLIP skip, SDXL's two encoders and pooling.

Captions longer than one 75-token window (max_token_length 150/225) are encoded in windows of
75 tokens, each framed by begin/end tokens as CLIP was trained, and the windows' states are joined
(keeping one begin and one end state) as the Kohya scripts do, so LoRAs behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

WINDOW = 75


@dataclass
class Conditioning:
    hidden: torch.Tensor  # [B, tokens, width] cross-attention input
    pooled: torch.Tensor | None = None  # SDXL: [B, width2] from the second encoder


def tokenize(tokenizer, captions: list[str], max_token_length: int) -> torch.Tensor:
    """Token ids [B, windows, 77]; each window is BOS + 75 tokens + EOS/padding."""
    windows = max_token_length // WINDOW
    ids = tokenizer(captions, padding="max_length", truncation=True, max_length=windows * WINDOW + 2,
                    return_tensors="pt").input_ids
    if windows == 1:
        return ids[:, None, :]
    bos, eos, pad = ids[0, 0].item(), tokenizer.eos_token_id, tokenizer.pad_token_id
    chunks = []
    for w in range(windows):
        body = ids[:, 1 + w * WINDOW: 1 + (w + 1) * WINDOW]
        chunk = torch.cat([torch.full((ids.shape[0], 1), bos), body, torch.full((ids.shape[0], 1), pad)], dim=1)
        # a window whose body ends before its last slot already holds the EOS; otherwise add it
        for row in range(ids.shape[0]):
            if chunk[row, -2] not in (eos, pad):
                chunk[row, -1] = eos
        chunks.append(chunk)
    return torch.stack(chunks, dim=1)


def _states(encoder, ids: torch.Tensor, layer_from_end: int, final_norm: bool, want_pool: bool):
    out = encoder(ids, output_hidden_states=True)
    if final_norm and layer_from_end == 1:
        # hidden_states holds the layers' outputs before the final norm; SD 1.x/2.x (and the
        # pipelines that later use the LoRA) condition on the normed last layer.
        hidden = out.last_hidden_state
    else:
        hidden = out.hidden_states[-layer_from_end]
        if final_norm:
            norm = getattr(encoder, "final_layer_norm", None) or encoder.text_model.final_layer_norm
            hidden = norm(hidden)
    pooled = None
    if want_pool:
        pooled = out.text_embeds if hasattr(out, "text_embeds") and out.text_embeds is not None else out.pooler_output
    return hidden, pooled


def _join_windows(states: torch.Tensor, windows: int) -> torch.Tensor:
    """[B*windows, 77, C] → [B, 2 + 75*windows, C]: first BOS, every window's body, last EOS."""
    if windows == 1:
        return states
    batch = states.shape[0] // windows
    states = states.view(batch, windows, *states.shape[1:])
    parts = [states[:, 0, :1]] + [states[:, w, 1:-1] for w in range(windows)] + [states[:, -1, -1:]]
    return torch.cat(parts, dim=1)


def encode_captions(tokenizers, encoders, captions: list[str], *, sdxl: bool, clip_skip: int,
                    max_token_length: int, device) -> Conditioning:
    windows = max_token_length // WINDOW
    if not sdxl:
        ids = tokenize(tokenizers[0], captions, max_token_length).to(device)
        hidden, _ = _states(encoders[0], ids.flatten(0, 1), clip_skip, True, False)
        return Conditioning(_join_windows(hidden, windows))
    # SDXL conditions on the penultimate layer of both encoders (clip_skip counts from there).
    hiddens, pooled = [], None
    for index, (tokenizer, encoder) in enumerate(zip(tokenizers, encoders)):
        ids = tokenize(tokenizer, captions, max_token_length).to(device)
        hidden, pool = _states(encoder, ids.flatten(0, 1), clip_skip + 1, False, index == 1)
        hiddens.append(_join_windows(hidden, windows))
        if index == 1:
            pooled = pool.view(len(captions), windows, -1)[:, 0]  # the first window's pooled output
    return Conditioning(torch.cat(hiddens, dim=-1), pooled)


class ConditioningCache:
    """Conditioning per caption under a frozen text encoder, so each caption is encoded once.

    Works on any family's conditioning (a dataclass of per-caption tensors, some None). Bounded by
    bytes (the states live on the training device): captions beyond the budget, as shuffled tags
    make many, are encoded every time they come; `budget_bytes=None` keeps every caption.
    """

    def __init__(self, budget_bytes: int | None = 512 << 20):
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self.rows: dict[str, tuple[torch.Tensor | None, ...]] = {}
        self.kind: type | None = None  # the family's conditioning class, from the first encoding

    def lookup(self, captions: list[str], encode) -> Conditioning:
        fresh_rows: dict[str, tuple[torch.Tensor | None, ...]] = {}
        missing = [caption for caption in dict.fromkeys(captions) if caption not in self.rows]
        if missing:
            with torch.no_grad():
                fresh = encode(missing)
            self.kind = type(fresh)
            columns = [getattr(fresh, f.name) for f in fields(fresh)]
            for index, caption in enumerate(missing):
                # own storage, so a kept row does not hold on to the whole batch
                row = tuple(column[index].clone() if column is not None else None for column in columns)
                fresh_rows[caption] = row
                self.put(caption, row)
        rows = [self.rows.get(caption) or fresh_rows[caption] for caption in captions]
        return self.kind(*[torch.stack([row[i] for row in rows]) if rows[0][i] is not None else None
                           for i in range(len(rows[0]))])

    def put(self, caption: str, row: tuple[torch.Tensor | None, ...]) -> bool:
        """Keep one caption's row when the budget allows; whether it was kept."""
        size = sum(t.numel() * t.element_size() for t in row if t is not None)
        if self.budget_bytes is not None and self.used_bytes + size > self.budget_bytes:
            return False
        self.rows[caption] = row
        self.used_bytes += size
        return True
