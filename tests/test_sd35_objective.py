"""SD 3.5's objective as sd-scripts' `sd3_train_network.py` computes it, on the tiny model and on plain numbers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from engine.families.sd35 import objective as obj  # noqa: E402
from engine.diffusion.text import Conditioning  # noqa: E402


def _options(**changes) -> obj.SD3Options:
    return obj.SD3Options(**changes)


def test_uniform_draws_cover_all_levels_and_logit_normal_gathers_them_in_the_middle():
    generator = torch.Generator().manual_seed(0)
    uniform = obj.draw_timesteps(_options(), 20000, generator) / 1000
    logit = obj.draw_timesteps(_options(weighting_scheme="logit_normal"), 20000, generator) / 1000
    assert 0.45 < float(uniform.mean()) < 0.55 and float(uniform.std()) > 0.27  # even spread: std ≈ 0.289
    assert 0.45 < float(logit.mean()) < 0.55 and float(logit.std()) < 0.23  # sigmoid(N(0,1)): std ≈ 0.21
    noisy = obj.draw_timesteps(_options(weighting_scheme="logit_normal", logit_mean=1.0), 20000, generator) / 1000
    assert float(noisy.mean()) > 0.65  # a positive mean trains noisier levels


def test_mode_draw_follows_sd_scripts_formula_and_zero_scale_is_uniform():
    u = torch.rand(1000, generator=torch.Generator().manual_seed(1))
    mode = obj.timestep_density(_options(weighting_scheme="mode", mode_scale=1.29), 1000, torch.Generator().manual_seed(1))
    assert torch.allclose(mode, 1 - u - 1.29 * (torch.cos(math.pi * u / 2) ** 2 - 1 + u))
    flat = obj.timestep_density(_options(weighting_scheme="mode", mode_scale=0.0), 1000, torch.Generator().manual_seed(1))
    assert torch.allclose(flat, 1 - u)


def test_training_shift_pushes_levels_towards_noise_and_the_timestep_window_bounds_them():
    same = torch.Generator().manual_seed(2)
    base = obj.draw_timesteps(_options(), 5000, same)
    shifted = obj.draw_timesteps(_options(training_shift=3.0), 5000, torch.Generator().manual_seed(2))
    assert float(shifted.mean()) > float(base.mean()) + 150
    window = obj.draw_timesteps(_options(min_timestep=200, max_timestep=400), 5000, torch.Generator().manual_seed(2))
    assert float(window.min()) >= 200 and float(window.max()) < 400
    assert torch.equal(window, window.round())  # whole timesteps, as sd-scripts' .long()


def test_loss_weightings_are_sd_scripts_and_stay_finite_at_the_clean_end():
    sigmas = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert torch.equal(obj.loss_weighting("uniform", sigmas), torch.ones(4))
    assert torch.allclose(obj.loss_weighting("sigma_sqrt", sigmas)[1:], sigmas[1:] ** -2)
    assert math.isfinite(float(obj.loss_weighting("sigma_sqrt", sigmas)[0]))
    assert torch.allclose(obj.loss_weighting("cosmap", sigmas), 2 / (math.pi * (1 - 2 * sigmas + 2 * sigmas ** 2)))


class _Echo(torch.nn.Module):
    """A stand-in transformer that returns a fixed field (only the loss arithmetic is under test)."""

    def __init__(self, field: torch.Tensor):
        super().__init__()
        self.field = field

    def forward(self, hidden_states, timestep, encoder_hidden_states, pooled_projections, return_dict=False):
        self.seen = (timestep.clone(), encoder_hidden_states.clone(), pooled_projections.clone())
        return (self.field.expand_as(hidden_states),)


def _objective(scheme: str = "uniform", **sd35) -> obj.SD3Objective:
    values = {"weighting_scheme": scheme, "logit_mean": 0.0, "logit_std": 1.0, "mode_scale": 1.29, "training_shift": 1.0,
              "clip_l_dropout_rate": 0.0, "clip_g_dropout_rate": 0.0, "t5_dropout_rate": 0.0, **sd35}
    cfg = SimpleNamespace(sd35=SimpleNamespace(**values),
                          training=SimpleNamespace(min_timestep=None, max_timestep=None, loss_type="l2", huber_schedule="snr",
                                                   huber_c=0.1, huber_scale=1.0))
    encoders = [SimpleNamespace(config=SimpleNamespace(hidden_size=3, projection_dim=3)),
                SimpleNamespace(config=SimpleNamespace(hidden_size=4, projection_dim=4))]
    return obj.SD3Objective(cfg, SimpleNamespace(text_encoders=encoders), generator=torch.Generator().manual_seed(5),
                            weight_dtype=torch.float32, device=torch.device("cpu"))


def test_loss_compares_the_clean_latent_estimate_with_the_latents_weighted_per_image():
    latents = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(7))
    field = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(8))
    cond = Conditioning(torch.zeros(2, 80, 8), torch.zeros(2, 7))
    for scheme in ("uniform", "sigma_sqrt"):
        objective = _objective(scheme)
        denoiser = _Echo(field)
        loss = objective.loss(denoiser, latents, cond, torch.ones(2), None, None)
        # replay the same draws: noise first, then the timesteps (sd-scripts' order)
        replay = torch.Generator().manual_seed(5)
        noise = torch.randn(latents.shape, generator=replay)
        t = obj.draw_timesteps(objective.options, 2, replay)
        assert torch.equal(denoiser.seen[0], t)
        s = (t / 1000).view(-1, 1, 1, 1)
        noisy = s * noise + (1 - s) * latents
        estimate = field * (-s) + noisy
        per_image = ((estimate - latents) ** 2).mean(dim=(1, 2, 3)) * obj.loss_weighting(scheme, s.flatten())
        assert torch.allclose(loss, per_image.mean(), rtol=1e-5)


def test_encoder_dropout_zeroes_only_that_encoders_part_of_the_conditioning():
    hidden, pooled = torch.ones(1, 77 + 5, 8), torch.ones(1, 7)
    widths = (3, 4, 3, 4)  # CLIP-L states 3 wide, CLIP-G 4; pooled likewise
    out = obj.drop_encoders(Conditioning(hidden, pooled), (1.0, 0.0, 0.0), widths, torch.Generator())
    assert float(out.hidden[0, :77, :3].abs().sum()) == 0 and float(out.pooled[0, :3].abs().sum()) == 0
    assert bool((out.hidden[0, :77, 3:7] == 1).all()) and bool((out.hidden[0, 77:] == 1).all())
    assert bool((out.pooled[0, 3:] == 1).all())
    t5 = obj.drop_encoders(Conditioning(hidden, pooled), (0.0, 0.0, 1.0), widths, torch.Generator())
    assert float(t5.hidden[0, 77:].abs().sum()) == 0 and bool((t5.hidden[0, :77] == 1).all())
    assert obj.drop_encoders(Conditioning(hidden, pooled), (0.0, 0.0, 0.0), widths, None).hidden is hidden


@pytest.fixture(scope="module")
def tiny_pipe(model_cache):
    from diffusers import StableDiffusion3Pipeline

    from engine.families.sd35.tiny import ensure_tiny_sd35_model

    return StableDiffusion3Pipeline.from_pretrained(str(ensure_tiny_sd35_model(model_cache)))


def test_training_conditioning_is_what_the_sd3_pipeline_samples_with(tiny_pipe):
    pipe = tiny_pipe
    captions = ["a red dog on a street", "sks"]
    with torch.no_grad():
        ours = obj.encode_sd3_captions([pipe.tokenizer, pipe.tokenizer_2, pipe.tokenizer_3],
                                       [pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3], captions,
                                       t5_max_tokens=256, lg_mask=False, t5_mask=False, device="cpu")
        embeds, _, pooled, _ = pipe.encode_prompt(captions, captions, captions, do_classifier_free_guidance=False,
                                                  max_sequence_length=256)
    assert ours.hidden.shape == embeds.shape == (2, 77 + 256, pipe.text_encoder_3.config.d_model)
    assert torch.allclose(ours.hidden, embeds, atol=1e-6) and torch.allclose(ours.pooled, pooled, atol=1e-6)


def test_the_masks_change_only_what_the_encoders_see(tiny_pipe):
    pipe = tiny_pipe
    args = ([pipe.tokenizer, pipe.tokenizer_2, pipe.tokenizer_3], [pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3],
            ["a dog"])
    with torch.no_grad():
        plain = obj.encode_sd3_captions(*args, t5_max_tokens=16, lg_mask=False, t5_mask=False, device="cpu")
        t5_masked = obj.encode_sd3_captions(*args, t5_max_tokens=16, lg_mask=False, t5_mask=True, device="cpu")
        lg_masked = obj.encode_sd3_captions(*args, t5_max_tokens=16, lg_mask=True, t5_mask=False, device="cpu")
    assert plain.hidden.shape[1] == 77 + 16
    assert torch.equal(plain.hidden[:, :77], t5_masked.hidden[:, :77]) and not torch.equal(plain.hidden[:, 77:], t5_masked.hidden[:, 77:])
    assert torch.equal(plain.hidden[:, 77:], lg_masked.hidden[:, 77:]) and not torch.equal(plain.hidden[:, :77], lg_masked.hidden[:, :77])


def test_a_tiny_transformer_step_gives_a_finite_loss_and_gradients_on_every_block(tiny_pipe):
    pipe = tiny_pipe
    objective = _objective("logit_normal")
    objective.widths = (pipe.text_encoder.config.hidden_size, pipe.text_encoder_2.config.hidden_size,
                        pipe.text_encoder.config.projection_dim, pipe.text_encoder_2.config.projection_dim)
    with torch.no_grad():
        cond = obj.encode_sd3_captions([pipe.tokenizer, pipe.tokenizer_2, pipe.tokenizer_3],
                                       [pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3], ["a dog", "a cat"],
                                       t5_max_tokens=8, lg_mask=False, t5_mask=False, device="cpu")
    latents = torch.randn(2, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    transformer = pipe.transformer
    transformer.zero_grad()
    loss = objective.loss(transformer, latents, cond, torch.ones(2), None, None)
    loss.backward()
    assert math.isfinite(float(loss.detach()))
    for index in range(transformer.config.num_layers):
        assert transformer.transformer_blocks[index].attn.to_q.weight.grad.abs().sum() > 0
    assert transformer.transformer_blocks[0].attn2.to_q.weight.grad.abs().sum() > 0
