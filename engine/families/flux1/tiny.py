"""The built-in tiny FLUX.1-shaped model: a real `FluxPipeline` folder, small enough for a CPU.

It has FLUX.1 [dev]'s structure with small widths and seeded random weights: a
`FluxTransformer2DModel` with two double-stream and two single-stream blocks (so block indices
above 0 are exercised) and guidance embedding, a CLIP-L-style `CLIPTextModel` (pooled vector), a
`T5EncoderModel` (per-token states), a 16-channel `AutoencoderKL` with Flux's scaling and shift,
and the flow-matching Euler scheduler with dynamic shifting. Both tokenizers are generated
locally (no download). As with the SD tiny models the VAE downsamples by 4, so a 64 px image is a
16×16 latent, packed into 8×8 = 64 image tokens.

Built on first use into `<cache root>/models/builtin-tiny-flux1` through a temporary folder
renamed into place (the SD tiny models' helpers), and reused afterwards.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.models.tiny import TinyModel, ensure_built
from engine.models.tokenizer import END_TOKEN, MAX_LENGTH, clip_vocab_and_merges, write_clip_tokenizer

NAME = "builtin-tiny-flux1"
SEED = 1004
# Bump when the builder changes, so cached folders built by older code are rebuilt.
BUILDER_VERSION = 2

# Widths the training side needs to know (the T5 and CLIP hidden sizes are the transformer's
# joint attention and pooled projection sizes).
T5_WIDTH = 32
CLIP_WIDTH = 32
LATENT_CHANNELS = 16
T5_MAX_LENGTH = 512  # what the real T5-XXL tokenizer records; Flux pipelines ask for 256 or 512

# The T5 side's vocabulary: SentencePiece-style pieces ("▁" marks a word start), scored so whole
# words win over their letters, as a real unigram model would.
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
    # Letters alone and at a word start, so any caption tokenizes; skip pieces the words already gave.
    vocab += [(piece, score) for char in _T5_CHARS for piece, score in ((char, -5.0), (f"▁{char}", -4.5))
              if piece not in seen]
    return vocab


def build_t5_tokenizer():
    """A T5 fast tokenizer (unigram, "▁" word starts, `</s>` appended) over the generated vocabulary.

    Built with the `tokenizers` library and wrapped in `T5TokenizerFast`, which both transformers 4
    and 5 accept without a SentencePiece model file.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    backend = Tokenizer(models.Unigram(t5_vocab(), unk_id=2))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           extra_ids=0, model_max_length=T5_MAX_LENGTH)


def ensure_tiny_flux_model(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the FluxPipeline folder of the tiny Flux model, building it first if needed."""
    return ensure_built(TINY_MODEL, cache_dir)


def _finish_tokenizers(folder: Path) -> None:
    write_clip_tokenizer(folder / "tokenizer", pad_token=END_TOKEN)
    _finish_t5_tokenizer(folder / "tokenizer_2")


def _finish_t5_tokenizer(folder: Path) -> None:
    # Record the length and special tokens (the class is the one the installed transformers saved).
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    config.update({"model_max_length": T5_MAX_LENGTH, "extra_ids": 0,
                   "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"})
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_flux_pipeline():
    """The in-memory tiny `FluxPipeline` (deterministic: same weights on every call)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from engine.models.tokenizer import build_clip_tokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        vocab, _ = clip_vocab_and_merges()
        clip = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=CLIP_WIDTH, intermediate_size=CLIP_WIDTH * 4,
            projection_dim=CLIP_WIDTH, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=MAX_LENGTH, hidden_act="quick_gelu", pad_token_id=vocab[END_TOKEN],
            bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab[END_TOKEN],
        ))
        tokenizer_2 = build_t5_tokenizer()
        # T5 v1.1 (what FLUX.1 uses): gated-gelu feed-forward, relative position buckets.
        t5 = T5EncoderModel(T5Config(
            vocab_size=len(tokenizer_2), d_model=T5_WIDTH, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=32,
            feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        ))
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=LATENT_CHANNELS * 4,  # latents are packed 2×2 into tokens
            num_layers=2,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=T5_WIDTH,
            pooled_projection_dim=CLIP_WIDTH,
            guidance_embeds=True,  # [dev] takes the guidance scale as an input
            axes_dims_rope=(4, 6, 6),  # sums to the head width, as (16, 56, 56) does for 128
        )
        # Three blocks: two downsamplings, so latents are 1/4 of the image side. No quant convs, like Flux's AE.
        vae = AutoencoderKL(
            in_channels=3, out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(32, 32, 64), layers_per_block=1, latent_channels=LATENT_CHANNELS,
            norm_num_groups=16, sample_size=64, scaling_factor=0.3611, shift_factor=0.1159,
            use_quant_conv=False, use_post_quant_conv=False, force_upcast=True,
        )
        # FLUX.1 [dev]'s scheduler settings: the shift grows with the number of image tokens.
        scheduler = FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
            base_image_seq_len=256, max_image_seq_len=4096,
        )
        return FluxPipeline(
            scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=build_clip_tokenizer(END_TOKEN),
            text_encoder_2=t5, tokenizer_2=tokenizer_2, transformer=transformer,
        )


TINY_MODEL = TinyModel(name=NAME, family="flux1", seed=SEED, description="FLUX.1 [dev]-shaped (CLIP-L + T5, flow matching)",
                       builder_version=BUILDER_VERSION, build=build_flux_pipeline, finish=_finish_tokenizers)
