"""SD 3.5 in the wizard: its quick picks enable the sd35 settings (others see them disabled with the
reason), the Review screen shows the real-size estimate, and key presses save an SD 3.5 run file."""

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

SD35_KEYS = ("sd35.weighting_scheme", "sd35.training_shift", "sd35.t5xxl_max_token_length",
             "sd35.apply_lg_attn_mask", "sd35.clip_l_dropout_rate", "sd35.lora_format")


@run_async
async def test_sd35_options_are_enabled_for_sd35_and_disabled_with_the_reason_for_flux(wizard_env):
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await settle(pilot)
        await choose(pilot, "model.quick_pick", "flux1-dev")
        await open_step(pilot, 3)
        assert isinstance(app.screen, ParametersScreen)
        for key in SD35_KEYS:
            assert app.draft.disabled_reason(SETTINGS[key]) == "only for SD 3.5 models (this run is FLUX.1)"
            assert app.screen.fields()[key].control.disabled

        await open_step(pilot, 1)
        await choose(pilot, "model.quick_pick", "sd35-large")
        assert app.draft.values["model.family"] == "sd35"
        await open_step(pilot, 3)
        fields = app.screen.fields()
        for key in SD35_KEYS:
            assert not fields[key].control.disabled, key
        # the weighting scheme's own options wait for their scheme
        assert "logit_normal" in app.draft.disabled_reason(SETTINGS["sd35.logit_mean"])
        # the SD objective's and FLUX.1's options are the ones now disabled, each with its reason
        assert fields["training.min_snr_gamma"].control.disabled
        assert "weighting_scheme" in app.draft.disabled_reason(SETTINGS["training.min_snr_gamma"])
        assert fields["flux.guidance_scale"].control.disabled

        app.draft.values["hardware.vram_gb"] = 80  # a planned GPU: the panel shows the estimate on any machine
        await open_step(pilot, 4)  # the real-size estimate, from SD 3.5 Large's reference configs
        vram = str(app.screen.query_one("#vram").render())
        assert "peak ≈" in vram and "transformer weights" in vram, vram


@run_async
async def test_sd35_run_made_with_keys_saves_a_yaml_that_loads_and_validates(dataset, wizard_env):
    from engine.families.sd35.tiny import ensure_tiny_sd35_model

    ensure_tiny_sd35_model()  # built, so the Review screen can read its configs for the estimates
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await settle(pilot)
        await choose(pilot, "model.quick_pick", "builtin-tiny-sd35")
        assert app.draft.values["model.family"] == "sd35"
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
        await choose(pilot, "sd35.weighting_scheme", "logit_normal", tab=False)
        await set_text(pilot, "sd35.logit_mean", "0.5", tab=False)
        await set_text(pilot, "sd35.training_shift", "3", tab=False)
        await set_text(pilot, "sd35.t5xxl_max_token_length", "128", tab=False)
        await toggle(pilot, "training.cache_text_encoder_outputs", True, tab=False)
        app.draft.values["hardware.vram_gb"] = 24  # a planned GPU: the panel shows the estimate on any machine
        await pilot.press("ctrl+n")
        await settle(pilot)

        assert isinstance(app.screen, ReviewScreen)
        derived = str(app.screen.query_one("#derived").render())
        # the file-size count reads the tiny transformer's config: 31 sd-scripts modules (fused qkv; blocks 0
        # and 1 hold 12 with MMDiT-X's second attention, the last 7: its text half only modulates and
        # computes qkv), the CLIPs not trained
        assert "31 layers, from the configs in" in derived
        vram = str(app.screen.query_one("#vram").render())
        assert "peak ≈" in vram and "GiB" in vram, vram
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, PathPromptScreen)
        await pilot.press("end", "ctrl+u")
        await type_text(pilot, "runs/sd35.yaml")
        await pilot.press("enter")
        await pilot.pause()
        assert not app.draft.dirty

    cfg, warnings = load_run_file(wizard_env / "runs" / "sd35.yaml")
    assert (cfg.model.quick_pick, cfg.model.family) == ("builtin-tiny-sd35", "sd35")
    assert (cfg.sd35.weighting_scheme, cfg.sd35.logit_mean, cfg.sd35.training_shift) == ("logit_normal", 0.5, 3.0)
    assert cfg.sd35.t5xxl_max_token_length == 128 and cfg.training.cache_text_encoder_outputs
    _, problems = validate_values(cfg.values)
    assert not [p for p in problems if p.is_error]
    assert not [w for w in warnings if w.field.startswith("sd35.")]
