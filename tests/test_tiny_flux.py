"""The built-in tiny FLUX.1 model: a FluxPipeline folder built locally that diffusers loads and runs."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from engine.families.flux1.tiny import build_t5_tokenizer, ensure_tiny_flux_model, t5_vocab  # noqa: E402


def test_t5_tokenizer_splits_known_words_into_pieces_and_ends_with_eos():
    tokenizer = build_t5_tokenizer()
    ids = tokenizer("a photo of sks dogz").input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == ["▁a", "▁photo", "▁of", "▁sks", "▁dog", "z", "</s>"]
    pieces = [piece for piece, _ in t5_vocab()]
    assert len(pieces) == len(set(pieces)), "a duplicated piece would make two ids for one token"
    assert pieces[:3] == ["<pad>", "</s>", "<unk>"]  # T5's fixed ids: pad 0, eos 1, unk 2


def test_tiny_flux_folder_loads_in_flux_pipeline_and_makes_an_image(model_cache):
    from diffusers import FluxPipeline, FluxTransformer2DModel

    folder = ensure_tiny_flux_model()
    assert folder.parent.parent == model_cache
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "FluxPipeline"
    assert ensure_tiny_flux_model() == folder  # reused, not rebuilt

    pipe = FluxPipeline.from_pretrained(str(folder))
    transformer = pipe.transformer
    assert isinstance(transformer, FluxTransformer2DModel)
    assert len(transformer.transformer_blocks) >= 2 and len(transformer.single_transformer_blocks) >= 2
    assert transformer.config.guidance_embeds  # shaped like [dev]
    assert pipe.vae.config.latent_channels == 16
    assert pipe.tokenizer_2("a dog").input_ids[-1] == pipe.tokenizer_2.eos_token_id

    def render(seed: int):
        return pipe("a photo of sks dog", height=64, width=64, num_inference_steps=1, guidance_scale=3.5,
                    max_sequence_length=16, generator=torch.Generator().manual_seed(seed), output_type="np").images

    image = render(0)
    assert image.shape == (1, 64, 64, 3)
    assert image.std() > 0.01  # an actual picture of noise, not a constant
    assert (render(0) == image).all()  # the folder's weights are fixed: same seed, same image
