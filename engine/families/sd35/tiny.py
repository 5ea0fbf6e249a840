"""The built-in tiny SD 3.5-shaped model: a real `StableDiffusion3Pipeline` folder, small enough for a CPU.

SD 3.5 Medium's structure with small widths and seeded random weights: an `SD3Transformer2DModel`
with three joint blocks (indices above 0 are exercised; the last one's text half is "pre-only", as
in every SD3 model), QK RMS-norm, and MMDiT-X dual attention in blocks 0 and 1, so both the
Medium-only `attn2` layers and the plain blocks are trained; CLIP-L- and CLIP-G-style
`CLIPTextModelWithProjection` encoders of different widths (their penultimate states are joined
and padded to T5's width); a T5 v1.1-style encoder; a 16-channel `AutoencoderKL` with SD3's
scaling and shift; and the flow-matching Euler scheduler with SD3's shift of 3. All three tokenizers
are generated locally (no download). The VAE downsamples by 4, so a 64 px image is a 16×16 latent.

Built on first use into `<cache root>/models/builtin-tiny-sd35` through a temporary folder renamed
into place (the shared tiny-model helpers), and reused afterwards.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.models.tiny import TinyModel, ensure_built
from engine.models.tokenizer import END_TOKEN, MAX_LENGTH, clip_vocab_and_merges, write_clip_tokenizer

NAME = "builtin-tiny-sd35"
SEED = 1006
# Bump when the builder changes, so cached folders are rebuilt. (CLIPTextModelWithProjection is saved as
# transformers writes it: `text_model.…` plus a top-level `text_projection`, the layout of SD3 repos.)
BUILDER_VERSION = 2

CLIP_L_WIDTH = 32
CLIP_G_WIDTH = 48
T5_WIDTH = 96  # ≥ CLIP-L + CLIP-G: the joined CLIP states are zero-padded to T5's width
LATENT_CHANNELS = 16
NUM_LAYERS = 3
DUAL_ATTENTION_LAYERS = (0, 1)
T5_MAX_LENGTH = 512

# T5's side: SentencePiece-style pieces ("▁" starts a word), scored so whole words beat letters.
_T5_WORDS = (
    "a an the of in on with and at by for is photo picture painting drawing portrait style art "
    "woman man girl boy person dog cat bird house tree car sky sea city street room "
    "red blue green yellow white black dark light small large old young beautiful "
    "background detailed high quality sks ohwx"
).split()
_T5_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()"


def t5_vocab() -> list[tuple[str, float]]:
    """(piece, log-probability) in T5's order: <pad>, </s>, <unk>, then the pieces."""
    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(f"▁{word}", -1.0 - 0.01 * i) for i, word in enumerate(_T5_WORDS)]
    seen = {piece for piece, _ in vocab}
    vocab += [(piece, score) for char in _T5_CHARS for piece, score in ((char, -5.0), (f"▁{char}", -4.5))
              if piece not in seen]
    return vocab


def build_t5_tokenizer():
    """A T5 fast tokenizer (unigram, "▁" word starts, `</s>` appended) over the generated vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    backend = Tokenizer(models.Unigram(t5_vocab(), unk_id=2))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           extra_ids=0, model_max_length=T5_MAX_LENGTH)


def ensure_tiny_sd35_model(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the StableDiffusion3Pipeline folder of the tiny model, building it first if needed."""
    return ensure_built(TINY_MODEL, cache_dir)


def _finish_tokenizers(folder: Path) -> None:
    write_clip_tokenizer(folder / "tokenizer", pad_token=END_TOKEN)
    write_clip_tokenizer(folder / "tokenizer_2", pad_token="!")  # OpenCLIP's pad, as CLIP-G's tokenizer
    _finish_t5_tokenizer(folder / "tokenizer_3")


def _finish_t5_tokenizer(folder: Path) -> None:
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    config.update({"model_max_length": T5_MAX_LENGTH, "extra_ids": 0,
                   "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"})
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _clip(width: int, act: str, pad_token: str):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    vocab, _ = clip_vocab_and_merges()
    return CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=width, intermediate_size=width * 4, projection_dim=width,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=MAX_LENGTH, hidden_act=act,
        pad_token_id=vocab[pad_token], bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab[END_TOKEN],
    ))


def build_sd35_pipeline():
    """The in-memory tiny `StableDiffusion3Pipeline` (deterministic: same weights on every call)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import T5Config, T5EncoderModel

    from engine.models.tokenizer import build_clip_tokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        clip_l = _clip(CLIP_L_WIDTH, "quick_gelu", END_TOKEN)
        clip_g = _clip(CLIP_G_WIDTH, "gelu", "!")
        tokenizer_3 = build_t5_tokenizer()
        t5 = T5EncoderModel(T5Config(
            vocab_size=len(tokenizer_3), d_model=T5_WIDTH, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=32,
            feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        ))
        heads, head_dim = 2, 16
        transformer = SD3Transformer2DModel(
            sample_size=16, patch_size=2, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
            num_layers=NUM_LAYERS, attention_head_dim=head_dim, num_attention_heads=heads,
            joint_attention_dim=T5_WIDTH, caption_projection_dim=heads * head_dim,
            pooled_projection_dim=CLIP_L_WIDTH + CLIP_G_WIDTH, pos_embed_max_size=32,
            dual_attention_layers=DUAL_ATTENTION_LAYERS, qk_norm="rms_norm",
        )
        vae = AutoencoderKL(
            in_channels=3, out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(32, 32, 64), layers_per_block=1, latent_channels=LATENT_CHANNELS,
            norm_num_groups=16, sample_size=64, scaling_factor=1.5305, shift_factor=0.0609,
            use_quant_conv=False, use_post_quant_conv=False, force_upcast=True,
        )
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
        return StableDiffusion3Pipeline(
            transformer=transformer, scheduler=scheduler, vae=vae,
            text_encoder=clip_l, tokenizer=build_clip_tokenizer(END_TOKEN),
            text_encoder_2=clip_g, tokenizer_2=build_clip_tokenizer("!"),
            text_encoder_3=t5, tokenizer_3=tokenizer_3,
        )


TINY_MODEL = TinyModel(name=NAME, family="sd35", seed=SEED, builder_version=BUILDER_VERSION, build=build_sd35_pipeline,
                       finish=_finish_tokenizers,
                       description="SD 3.5 Medium-shaped (MMDiT-X, CLIP-L + CLIP-G + T5, flow matching)")
