"""FLUX.1 in the wizard: the Flux quick picks enable the flux settings (others see them disabled with
the reason), the Review screen's numbers and VRAM line work, and key presses save a Flux run file."""

from __future__ import annotations

from engine.config import SETTINGS, load_run_file
from engine.config.validation import validate_values
from tui_lora.app import WizardApp
from tui_lora.screens.modals import PathPromptScreen
from tui_lora.screens.parameters import ParametersScreen
from tui_lora.screens.review import ReviewScreen

from . import wizard_support
from .wizard_support import choose, open_step, run_async, set_text, settle, toggle, type_text

dataset = wizard_support.dataset  # a fixture shared by the wizard's tests
wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests

FLUX_KEYS = ("flux.timestep_sampling", "flux.model_prediction_type", "flux.guidance_scale",
             "flux.t5xxl_max_token_length", "flux.apply_t5_attn_mask")


@run_async
async def test_flux_options_are_enabled_for_flux_and_disabled_with_the_reason_for_sd(wizard_env):
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await settle(pilot)
        await choose(pilot, "model.quick_pick", "builtin-tiny-sd1")
        await open_step(pilot, 3)
        assert isinstance(app.screen, ParametersScreen)
        for key in FLUX_KEYS:
            assert app.draft.disabled_reason(SETTINGS[key]) == "only for FLUX.1 models (this run is SD 1.x)"
            assert app.screen.fields()[key].control.disabled
        assert not app.screen.fields()["training.min_snr_gamma"].control.disabled

        await open_step(pilot, 1)
        await choose(pilot, "model.quick_pick", "flux1-schnell")
        await open_step(pilot, 3)
        fields = app.screen.fields()
        for key in FLUX_KEYS:
            assert not fields[key].control.disabled, key
        # and the SD objective's options are the ones now disabled, each with its reason
        assert fields["training.min_snr_gamma"].control.disabled
        assert "flow matching" in app.draft.disabled_reason(SETTINGS["training.min_snr_gamma"])

        await open_step(pilot, 4)  # the real-size estimate, from FLUX.1's reference configs
        vram = str(app.screen.query_one("#vram").render())
        assert "peak ≈" in vram and "transformer weights" in vram, vram


@run_async
async def test_flux_run_made_with_keys_saves_a_yaml_that_loads_and_validates(dataset, wizard_env):
    from engine.families.flux1.tiny import ensure_tiny_flux_model

    ensure_tiny_flux_model()  # built, so the Review screen can read its configs for the estimates
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await settle(pilot)
        await choose(pilot, "model.quick_pick", "builtin-tiny-flux1")
        assert app.draft.values["model.family"] == "flux1"
        await pilot.press("ctrl+n")
        await settle(pilot)
        await set_text(pilot, "folders.images", "dataset/images")
        await set_text(pilot, "folders.output", "out")
        await pilot.press("ctrl+n")
        await settle(pilot)

        assert isinstance(app.screen, ParametersScreen)
        await set_text(pilot, "network.rank", "4")
        await set_text(pilot, "network.alpha", "4")
        await set_text(pilot, "optimizer.text_encoder_lr", "0", tab=False)
        await pilot.press("ctrl+t")  # Advanced tab
        await pilot.pause()
        await choose(pilot, "flux.timestep_sampling", "shift", tab=False)
        await set_text(pilot, "flux.discrete_flow_shift", "3.1582", tab=False)
        await set_text(pilot, "flux.guidance_scale", "1", tab=False)
        await set_text(pilot, "flux.t5xxl_max_token_length", "128", tab=False)
        await toggle(pilot, "training.cache_text_encoder_outputs", True, tab=False)
        await pilot.press("ctrl+n")
        await settle(pilot)

        assert isinstance(app.screen, ReviewScreen)
        derived = str(app.screen.query_one("#derived").render())
        assert "LoRA scale (alpha / rank)      1" in derived
        # the file-size count reads the transformer's config: 26 fused Kohya modules, CLIP-L not trained
        assert "26 layers, from the configs in" in derived
        vram = str(app.screen.query_one("#vram").render())
        assert "peak ≈" in vram and "GiB" in vram, vram
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, PathPromptScreen)
        await pilot.press("end", "ctrl+u")
        await type_text(pilot, "runs/flux.yaml")
        await pilot.press("enter")
        await pilot.pause()
        assert not app.draft.dirty

    cfg, warnings = load_run_file(wizard_env / "runs" / "flux.yaml")
    assert (cfg.model.quick_pick, cfg.model.family) == ("builtin-tiny-flux1", "flux1")
    assert (cfg.flux.timestep_sampling, cfg.flux.discrete_flow_shift, cfg.flux.guidance_scale) == ("shift", 3.1582, 1.0)
    assert cfg.flux.t5xxl_max_token_length == 128 and cfg.training.cache_text_encoder_outputs
    assert cfg.optimizer.text_encoder_lr == 0.0
    _, problems = validate_values(cfg.values)
    assert not [p for p in problems if p.is_error]
    assert not [w for w in warnings if w.field.startswith("flux.")]
