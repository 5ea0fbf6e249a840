"""sd-scripts options honoured the way sd-scripts applies them (issue 17), and YAML read as Kohya users write it."""

from __future__ import annotations


import pytest

from engine.config import RunConfig, dump_run_yaml, validate_values

from .helpers import errors_of, load_text




# --- YAML booleans in choice settings ---------------------------------------------------------

def test_mixed_precision_no_in_yaml_means_the_choice_no_not_false(tmp_path):
    cfg, _ = load_text(tmp_path, """
        folders: {images: imgs}
        training:
          mixed_precision: no
    """)
    assert cfg.training.mixed_precision == "no"
    again, _ = load_text(tmp_path, dump_run_yaml(cfg))  # written back and read again: still the choice
    assert again.training.mixed_precision == "no"


def test_false_for_a_choice_spelled_like_a_boolean_is_that_choice_and_other_words_still_fail(tmp_path):
    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\ntraining: {mixed_precision: false}\n")
    assert cfg.training.mixed_precision == "no"
    assert any("save_precision" in e for e in errors_of(tmp_path, "folders: {images: imgs}\ntraining: {save_precision: no}\n"))


def test_bool_settings_still_accept_yes_no_on_off_in_yaml(tmp_path):
    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\ntraining: {cache_latents: no, gradient_checkpointing: on}\n")
    assert cfg.training.cache_latents is False and cfg.training.gradient_checkpointing is True
    assert any("cache_latents" in e for e in errors_of(tmp_path, "folders: {images: imgs}\ntraining: {cache_latents: maybe}\n"))


# --- max_train_steps ----------------------------------------------------------------------------

def _summary(steps_per_epoch: int, epochs: int):
    from engine.dataset.scan import DatasetSummary
    import dataclasses

    fields = {f.name: None for f in dataclasses.fields(DatasetSummary)}
    fields.update(steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * epochs, epochs=epochs, problems=[])
    return DatasetSummary(**fields)


def _cfg(**values):
    base = {"folders.images": "imgs", "model.quick_pick": "builtin-tiny-sd1"}
    base.update({k.replace("__", "."): v for k, v in values.items()})
    return RunConfig(validate_values(base)[0])


@pytest.mark.parametrize(("max_steps", "max_epochs", "total", "epochs"), [
    (None, None, 30, 3),    # epochs decide
    (25, None, 25, 3),      # cut inside the third epoch
    (70, None, 70, 7),      # more epochs than 'epochs' says: ceil(70 / 10)
    (25, 2, 20, 2),         # sd-scripts: max_train_epochs recomputes the steps, max_train_steps is ignored
])
def test_max_train_steps_sets_the_plans_length_by_sd_scripts_rule(max_steps, max_epochs, total, epochs):
    """train_network.py: with max_train_epochs the steps are epochs × steps per epoch; otherwise
    num_train_epochs = ceil(max_train_steps / steps per epoch) and training stops at the step."""
    from engine.plan import _plan

    cfg = _cfg(training__epochs=3 if not max_epochs else 1, training__max_train_steps=max_steps,
               training__max_train_epochs=max_epochs)
    plan = _plan(cfg, _summary(10, cfg.epochs))
    assert (plan.total_steps, plan.epochs, plan.dataset.total_steps) == (total, epochs, total)
    problems = validate_values(dict(cfg.values))[1]
    assert any(p.field == "training.max_train_steps" for p in problems) == bool(max_steps and max_epochs)


def test_max_train_steps_round_trips_and_refuses_bad_values(tmp_path):
    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\ntraining: {max_train_steps: 500}\n")
    assert cfg.training.max_train_steps == 500
    assert load_text(tmp_path, dump_run_yaml(cfg))[0].training.max_train_steps == 500
    for bad in ("0", "-5", "2.5", "many"):
        assert any("training.max_train_steps" in e for e in errors_of(tmp_path, f"folders: {{images: imgs}}\ntraining: {{max_train_steps: {bad}}}\n"))


@pytest.mark.slow
def test_training_stops_at_max_train_steps_inside_an_epoch(tiny_config):
    from engine.train.entry import run_config

    events: list[dict] = []
    result = run_config(tiny_config(training__epochs=5, training__max_train_steps=3, training__batch_size=1),
                        on_event=events.append)
    assert result.status == "completed", (result.message, result.hint)
    started = next(e for e in events if e["type"] == "run_started")
    steps = [e for e in events if e["type"] == "step"]
    assert started["total_steps"] == 3 and [e["step"] for e in steps] == [1, 2, 3]
    assert steps[-1]["total_steps"] == 3 and started["total_epochs"] == -(-3 // started["steps_per_epoch"])


# --- noise: offset strength, adaptive scale, pyramid noise, input perturbation, timesteps -------

def _gen(seed=1):
    import torch

    return torch.Generator().manual_seed(seed)


def test_random_noise_offset_strength_draws_the_offset_between_0_and_the_value():
    """sd-scripts get_noise_noisy_latents_and_timesteps: offset = rand(1) × noise_offset."""
    import torch
    from engine.diffusion.noise import NoiseOptions, sample_noise

    latents = torch.zeros(2, 4, 8, 8)
    plain = sample_noise(latents, NoiseOptions(), _gen())
    fixed = sample_noise(latents, NoiseOptions(offset=0.5), _gen()) - plain
    gen = _gen()
    torch.randn(latents.shape, generator=gen)
    expected_strength = torch.rand(1, generator=gen).item() * 0.5
    shift = torch.randn((2, 4, 1, 1), generator=gen)
    random = sample_noise(latents, NoiseOptions(offset=0.5, offset_random_strength=True), _gen()) - plain
    assert torch.allclose(random, (expected_strength * shift).expand_as(random), atol=1e-6)
    assert not torch.allclose(random, fixed)


def test_adaptive_noise_scale_adds_the_latents_channel_mean_to_the_offset():
    """sd-scripts apply_noise_offset: offset + adaptive_scale × |mean over H, W|, clamped at 0."""
    import torch
    from engine.diffusion.noise import offset_noise

    latents = torch.zeros(1, 2, 4, 4)
    latents[0, 0] = 3.0  # channel 0 mean 3, channel 1 mean 0
    noise = torch.zeros_like(latents)
    shift = torch.randn((1, 2, 1, 1), generator=_gen(5))
    out = offset_noise(latents, noise, 0.1, 0.2, _gen(5))
    assert torch.allclose(out[0, 0], (0.1 + 0.2 * 3.0) * shift[0, 0].expand(4, 4), atol=1e-6)
    assert torch.allclose(out[0, 1], 0.1 * shift[0, 1].expand(4, 4), atol=1e-6)
    clamped = offset_noise(latents, noise, 0.1, -1.0, _gen(5))  # 0.1 - 3 < 0 → no shift at all
    assert torch.count_nonzero(clamped[0, 0]) == 0


def test_pyramid_noise_adds_coarse_layers_and_keeps_unit_deviation():
    """sd-scripts pyramid_noise_like: layers at sizes / r**i, weighted discount**i, then / std."""
    import torch
    from engine.diffusion.noise import NoiseOptions, sample_noise

    latents = torch.zeros(4, 4, 32, 32)
    plain = sample_noise(latents, NoiseOptions(), _gen())
    pyramid = sample_noise(latents, NoiseOptions(multires_iterations=6, multires_discount=0.8), _gen())
    assert pyramid.std().item() == pytest.approx(1.0, abs=1e-4)
    # coarse layers make neighbouring values alike: a much higher correlation than white noise
    def neighbour_corr(x):
        return torch.corrcoef(torch.stack([x[..., :, :-1].flatten(), x[..., :, 1:].flatten()]))[0, 1].item()
    assert abs(neighbour_corr(plain)) < 0.05 and neighbour_corr(pyramid) > 0.2


def test_timesteps_stay_inside_min_and_max_and_one_level_when_equal():
    """sd-scripts get_timesteps: randint(min, max), or max itself when min == max."""
    import torch
    from engine.diffusion.noise import NoiseOptions, sample_timesteps

    drawn = sample_timesteps(2000, NoiseOptions(min_timestep=200, max_timestep=300), 1000, _gen(), "cpu")
    assert drawn.min() >= 200 and drawn.max() <= 299 and drawn.min() < 210 and drawn.max() > 290
    fixed = sample_timesteps(8, NoiseOptions(min_timestep=500, max_timestep=500), 1000, _gen(), "cpu")
    assert torch.equal(fixed, torch.full((8,), 500))
    plain = sample_timesteps(8, NoiseOptions(), 1000, _gen(), "cpu")
    assert torch.equal(plain, torch.randint(0, 1000, (8,), generator=_gen()))  # unchanged draw when off


def test_input_perturbation_noise_goes_to_the_input_only():
    """sd-scripts: noisy = add_noise(latents, noise + gamma × randn, t); the target keeps `noise`."""
    import torch
    from engine.diffusion.noise import NoiseOptions, model_input_noise

    noise = torch.randn(2, 4, 8, 8, generator=_gen(3))
    assert model_input_noise(noise, NoiseOptions(), _gen()) is noise
    perturbed = model_input_noise(noise, NoiseOptions(ip_gamma=0.1), _gen())
    assert torch.allclose(perturbed - noise, 0.1 * torch.randn(noise.shape, generator=_gen()), atol=1e-6)
    random = model_input_noise(noise, NoiseOptions(ip_gamma=0.1, ip_gamma_random_strength=True), _gen())
    gen = _gen()
    strength = torch.rand(1, generator=gen).item() * 0.1
    assert torch.allclose(random - noise, strength * torch.randn(noise.shape, generator=gen), atol=1e-6)


# --- loss types and debiased estimation ----------------------------------------------------------

def _scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def test_loss_types_follow_sd_scripts_conditional_loss():
    """sd-scripts conditional_loss: huber 2c(√(d²+c²)−c), smooth_l1 2(√(d²+c²)−c), l1 |d|, l2 d²."""
    import torch
    from engine.diffusion.loss import diffusion_loss

    prediction = torch.tensor([0.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    target = torch.tensor([0.05, -0.05, 2.0, -2.0]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    ones = torch.ones(2)
    c = torch.tensor([0.1, 0.1])
    d = target[0].flatten()
    assert diffusion_loss(prediction, target, ones, "l2").item() == pytest.approx((d ** 2).mean().item())
    assert diffusion_loss(prediction, target, ones, "l1").item() == pytest.approx(d.abs().mean().item())
    smooth = 2 * (torch.sqrt(d ** 2 + 0.01) - 0.1)
    assert diffusion_loss(prediction, target, ones, "smooth_l1", c).item() == pytest.approx(smooth.mean().item(), rel=1e-5)
    assert diffusion_loss(prediction, target, ones, "huber", c).item() == pytest.approx((0.1 * smooth).mean().item(), rel=1e-5)


def test_huber_schedules_follow_sd_scripts_thresholds():
    """sd-scripts get_huber_threshold_if_needed: constant c·scale, exponential exp(−αt)·scale with
    α = −ln(c)/T, snr (1−c)/(1+σ)² + c with σ = √((1−ᾱ)/ᾱ)."""
    import math

    import torch
    from engine.diffusion.loss import huber_thresholds

    scheduler, t = _scheduler(), torch.tensor([0, 500, 999])
    assert torch.allclose(huber_thresholds(scheduler, t, "constant", 0.1, 2.0), torch.full((3,), 0.2))
    expo = huber_thresholds(scheduler, t, "exponential", 0.1, 1.0)
    assert torch.allclose(expo, torch.exp(math.log(0.1) / 1000 * t.float()))
    alpha = scheduler.alphas_cumprod[t]
    sigma = ((1 - alpha) / alpha) ** 0.5
    assert torch.allclose(huber_thresholds(scheduler, t, "snr", 0.1, 1.0), (0.9 / (1 + sigma) ** 2 + 0.1).float())


def test_debiased_estimation_weights_by_inverse_root_snr():
    """sd-scripts apply_debiased_estimation: 1/√min(SNR, 1000) for ε, 1/(min(SNR,1000)+1) for v."""
    import torch
    from engine.diffusion.loss import debiased_weights

    scheduler, t = _scheduler(), torch.tensor([0, 10, 500, 999])
    snr = torch.clamp(scheduler.alphas_cumprod[t] / (1 - scheduler.alphas_cumprod[t]), max=1000).float()
    assert torch.allclose(debiased_weights(scheduler, t, False), 1 / torch.sqrt(snr))
    assert torch.allclose(debiased_weights(scheduler, t, True), 1 / (snr + 1))


# --- the options on a real step, in YAML, in validation and in the importer ---------------------

def test_objective_settings_round_trip_and_bad_values_are_refused(tmp_path):
    text = """
        folders: {images: imgs}
        training:
          noise_offset: 0.1
          noise_offset_random_strength: true
          adaptive_noise_scale: 0.01
          ip_noise_gamma: 0.1
          ip_noise_gamma_random_strength: true
          min_timestep: 100
          max_timestep: 900
          loss_type: huber
          huber_schedule: exponential
          huber_c: 0.2
          huber_scale: 1.5
          debiased_estimation_loss: true
    """
    cfg, _ = load_text(tmp_path, text)
    again, _ = load_text(tmp_path, dump_run_yaml(cfg))
    keys = [k for k in cfg.values if k.startswith("training.")]
    assert {k: again.values[k] for k in keys} == {k: cfg.values[k] for k in keys}
    assert again.training.huber_schedule == "exponential" and again.training.max_timestep == 900
    bad = {
        "min_timestep: 950\n  max_timestep: 900": "training.min_timestep",
        "adaptive_noise_scale: 0.1": "training.adaptive_noise_scale",
        "noise_offset: 0.1\n  multires_noise_iterations: 6": "training.multires_noise_iterations",
        "loss_type: l3": "training.loss_type",
        "huber_c: 0": "training.huber_c",
        "max_timestep: 1001": "training.max_timestep",
        "multires_noise_discount: 1.5": "training.multires_noise_discount",
        "ip_noise_gamma: -0.1": "training.ip_noise_gamma",
    }
    for body, field in bad.items():
        assert any(e.startswith(field) for e in errors_of(tmp_path, f"folders: {{images: imgs}}\ntraining:\n  {body}\n")), body
    multires, _ = load_text(tmp_path, "folders: {images: imgs}\ntraining: {multires_noise_iterations: 6, multires_noise_discount: 0.1}\n")
    assert (multires.training.multires_noise_iterations, multires.training.multires_noise_discount) == (6, 0.1)


def test_kohya_import_maps_the_objective_options_by_noise_type():
    from engine.config.kohya_import import convert_kohya_settings

    common = {"train_data_dir": "imgs", "min_timestep": 100, "max_timestep": 900, "loss_type": "smooth_l1",
              "huber_schedule": "constant", "huber_c": 0.2, "huber_scale": 1, "debiased_estimation_loss": True,
              "ip_noise_gamma": 0.1, "ip_noise_gamma_random_strength": True, "noise_offset": 0.05,
              "adaptive_noise_scale": 0.005, "noise_offset_random_strength": True,
              "multires_noise_iterations": 8, "multires_noise_discount": 0.2}
    original = convert_kohya_settings({**common, "noise_offset_type": "Original"})
    t = original.config.training
    assert (t.min_timestep, t.max_timestep, t.loss_type, t.huber_schedule, t.huber_c) == (100, 900, "smooth_l1", "constant", 0.2)
    assert t.debiased_estimation_loss and t.ip_noise_gamma == 0.1 and t.ip_noise_gamma_random_strength
    assert (t.noise_offset, t.adaptive_noise_scale, t.noise_offset_random_strength) == (0.05, 0.005, True)
    assert t.multires_noise_iterations == 0
    noted = {n.field for n in original.notes}
    assert "multires_noise_iterations" in noted and not noted & {"loss_type", "min_timestep", "huber_c", "ip_noise_gamma"}
    multires = convert_kohya_settings({**common, "noise_offset_type": "Multires"}).config.training
    assert (multires.multires_noise_iterations, multires.multires_noise_discount, multires.noise_offset) == (8, 0.2, 0.0)
    assert convert_kohya_settings({"train_data_dir": "imgs", "max_timestep": 0}).config.training.max_timestep == 1000


@pytest.mark.slow
def test_objective_options_change_a_real_training_step(tiny_config):
    """One step on the tiny model: the same draws, and each option changes the loss as its formula says."""
    from engine.train.entry import run_config

    def first_loss(name, **settings):
        events: list[dict] = []
        cfg = tiny_config(training__batch_size=1, optimizer__text_encoder_lr=0.0, training__max_train_steps=1,
                          folders__output_name=name, **settings)
        result = run_config(cfg, on_event=events.append)
        assert result.status == "completed", (result.message, result.hint)
        return next(e for e in events if e["type"] == "step")["loss"]

    plain = first_loss("plain")
    assert first_loss("l2", training__loss_type="l2") == plain
    changed = {name: first_loss(name, **settings) for name, settings in {
        "l1": dict(training__loss_type="l1"),
        "huber": dict(training__loss_type="huber", training__huber_schedule="constant"),
        "debiased": dict(training__debiased_estimation_loss=True),
        "ip": dict(training__ip_noise_gamma=0.5),
        "steps": dict(training__min_timestep=900),
        "multires": dict(training__multires_noise_iterations=4),
    }.items()}
    assert all(loss != plain for loss in changed.values()), changed
    assert changed["huber"] < plain  # 0.1-scaled smooth loss of small errors is well below their square


# --- additional_parameters ------------------------------------------------------------------------

def test_additional_parameters_import_known_flags_and_name_the_rest():
    """The GUI appends these to sd-scripts' command line, so they override its own keys."""
    from engine.config.kohya_import import convert_kohya_settings, parse_script_flags

    assert parse_script_flags("--a=1 --b 2 3 --c") == ([("a", "1"), ("b", "2 3"), ("c", True)], "")
    result = convert_kohya_settings({
        "train_data_dir": "imgs", "learning_rate": 1e-4, "unet_lr": 0, "text_encoder_lr": 5e-5, "max_grad_norm": 0,
        "optimizer": "AdamW", "additional_parameters": (
            "--max_grad_norm=1 --network_train_unet_only --lr_scheduler_type CosineAnnealingLR "
            "--lr_scheduler_args T_max=100 --min_timestep 50 --optimizer_type Lion --debiased_estimation_loss "
            "--color_aug --some_new_flag=3"),
    })
    cfg, notes = result.config, {}
    for note in result.notes:
        notes.setdefault(note.field, []).append(note.message)
    assert cfg.training.max_grad_norm == 1.0 and cfg.training.min_timestep == 50
    assert cfg.training.debiased_estimation_loss and cfg.optimizer.name == "Lion"
    assert cfg.optimizer.text_encoder_lr == 0 and cfg.optimizer.unet_lr == 1e-4  # the UNet only, at learning_rate
    assert cfg.optimizer.scheduler_type == "CosineAnnealingLR" and cfg.optimizer.scheduler_args == ["T_max=100"]
    assert not any("lr_scheduler" in key for key in notes) and "color_aug" in notes
    assert any("--some_new_flag=3" in m for m in notes["additional_parameters"])
    assert not any("max_grad_norm" in m or "min_timestep" in m for m in notes.get("additional_parameters", []))
    broken = convert_kohya_settings({"train_data_dir": "imgs", "additional_parameters": "--a 'unclosed"})
    assert any(n.field == "additional_parameters" and "not imported" in n.message for n in broken.notes)


def test_half_vae_flags_import_quietly_and_small_bucket_steps_become_8():
    """The VAE always encodes in fp32 here (what sdxl_no_half_vae asks); sd-scripts only warns on a
    bucket_reso_steps that is not a multiple of 8, so 1 is imported as the nearest usable step."""
    from engine.config.kohya_import import convert_kohya_settings

    result = convert_kohya_settings({"train_data_dir": "imgs", "sdxl": True, "sdxl_no_half_vae": True, "no_half_vae": False,
                                     "bucket_reso_steps": 1})
    notes = {n.field: n.message for n in result.notes}
    assert "sdxl_no_half_vae" not in notes and "no_half_vae" not in notes
    assert result.config.buckets.step == 8 and "8" in notes["bucket_reso_steps"]
    assert convert_kohya_settings({"train_data_dir": "imgs", "bucket_reso_steps": 32}).config.buckets.step == 32
