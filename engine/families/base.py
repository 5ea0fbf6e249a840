"""`ModelFamily`: everything that differs between base-model families, in one object per family.

This is the interface a new family implements (SD 3.5, Z-Image, ...). A family is one package
`engine/families/<name>/` whose `__init__.py` builds its `ModelFamily` (or a subclass, when its
behaviour differs: FLUX.1 is the worked example of a transformer family with flow matching) and
lists it in `FAMILIES`; `engine/families/__init__.py` registers it with one `register(...)` line.
Nothing else in engine/ or tui_lora/ changes: they ask the family object (found by its
`model.family` name in `engine.families.REGISTRY`) and never branch on a family name.

Two kinds of members:

- Facts, plain dataclass fields, torch-free, so the wizard, `validate` and the estimates use them
  at start-up: names and UI words, the Kohya naming and metadata strings, reference configs,
  native size, quick picks, the built-in tiny model, the VRAM reference file.
- Hooks, methods. The settings hooks are torch-free; every other hook imports torch, diffusers and
  the family's own modules inside the method (the wizard must start without torch), and may import
  only the generic layers below the families (engine.diffusion, engine.lorafile, engine.models,
  engine.networks, engine.dataset, engine.schema, engine.problems) and its own package, never a
  sibling family (shared code: engine/families/common/) and never what runs it (config, train, vram).

Hook contracts, grouped as in the class below:

  settings      settings_sections / adjust_settings / settings_rules: the family's own `Setting`s and
                where they go, generic settings it cannot use, its validation rules.
  old flags     matches_legacy_flags: whether the old v2/v_parameterization/sdxl booleans name it
                (only the YAML reader and the Kohya importer use them).
  loading       claims_source / load_base: a family whose models need their own loader (other
                components, single-file companions such as FLUX.1's clip_l/t5xxl/ae) claims them;
                SD-shaped families use the shared loader in engine/families/load.py.
  files         write_lora / read_lora (Kohya key names both ways), finish_metadata (its ss_* and
                modelspec.* keys on top of the common ones), version_for, modelspec_architecture.
  run checks    run_problems: settings it cannot train with, checked once the model is loaded.
  training      objective (an object with `loss(...)` per batch), text_options / encode_text
                (captions -> conditioning, and what may be cached), denoise, lora_targets,
                prepare_denoiser, training_target.
  samples       sample_scheduler, sample_options, pipeline.
  estimates     native_resolution, vram_reference, guessed_from_path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from engine.families.kohya_names import KohyaNames


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per family
class ModelFamily:
    name: str  # the `model.family` value: "sd1", "sd2", "sd2-v", "sdxl"
    label: str  # the words the UI and error messages use: "SD 1.x"
    naming: str  # the Kohya key naming scheme its LoRA files use: "sd1", "sd2", "sdxl"
    prediction_type: str  # the objective its models are trained for: "epsilon" or "v_prediction"
    base_model_version: str  # sd-scripts' `ss_base_model_version`
    architecture: str  # `modelspec.architecture` of the base (the LoRA's adds "/lora")
    implementation: str  # `modelspec.implementation` as sd-scripts writes it
    config_repo: str  # the hub repo whose configs a single file of this family loads with
    native_side: int  # image side the reference models were trained at (when no configs say)
    text_encoder_components: tuple[str, ...]  # folder names of its text encoders, in order
    pipeline_class: str  # the diffusers pipeline its samples are made with
    # The reference models' layer configs (torch-free): file-size and memory estimates count from these.
    reference_configs: Mapping[str, Any] = field(default_factory=dict)
    bucket_max_side: int = 1024  # a sensible largest bucket side
    size_conditioning: bool = False  # the denoiser also gets the image's size/crop (SDXL)
    # How captions become conditioning: "clip" (one CLIP encoder's last states) or "clip_pair_pooled"
    # (two encoders' penultimate states side by side, plus the second one's pooled output: SDXL).
    text_conditioning: str = "clip"
    # How other tools' metadata names the family: ss_base_model_version and modelspec.architecture prefixes.
    metadata_prefixes: tuple[str, str] = ("", "")
    marks_v_in_version: bool = True  # sd-scripts appends "_v" to SD 1.x/2.x versions for v-prediction
    # Its Kohya files use the original (LDM) UNet block names, mapped from the UNet's own config.
    ldm_unet_names: bool = False
    writes_prediction_type: bool = True  # modelspec.prediction_type (sd-scripts writes none for Flux)
    settings_section: str = ""  # the run-file section of settings only this family uses ("flux")
    # The wizard's quick picks of this family: (pick name, hub id or built-in model name), in menu order.
    quick_picks: tuple[tuple[str, str], ...] = ()
    # Families listed together in the quick-pick menu (the SD families: "sd"); "" means its own group.
    # Within a group the real models come first, then the built-in tiny ones.
    menu_group: str = ""
    tiny_model: Any = None  # its built-in tiny model (`engine.models.tiny.TinyModel`), if it has one
    # The real-size layer configs the VRAM estimate counts from (a JSON file in the family's folder:
    # {"source", "denoiser", "text_encoders", "vae"}); None: no estimate without the model's own configs.
    vram_reference_file: Any = None
    has_legacy_flags: bool = True  # the old v2/v_parameterization/sdxl booleans can name it (SD families)
    # The single-file companion settings (`model.<name>`) its `load_base` takes, by name.
    companions: tuple[str, ...] = ("clip_l", "t5xxl", "ae")
    trainable_text_encoders: int | None = None  # how many of its text encoders (first ones) a LoRA may train; None: all
    # Why `training.blocks_to_swap` does nothing for it ("" where its denoiser is a stack of blocks that swap).
    swap_unsupported: str = ("not available for SD UNets (their blocks differ in size and feed skip connections; "
                             "sd-scripts swaps FLUX.1 and SD 3.5 blocks only)")
    # Block groups a LoRA can be limited to (`flux.train_blocks`); empty: every adapted layer trains.
    train_block_groups: tuple[str, ...] = ()
    kohya: KohyaNames = field(default_factory=KohyaNames)  # its sd-scripts script, GUI switch and network module

    # ------------------------------------------------------------------ legacy flags and words

    @property
    def is_v_prediction(self) -> bool:
        return self.prediction_type == "v_prediction"

    def legacy_flags(self, prediction_type: str | None = None) -> dict[str, bool]:
        """The old `model.v2` / `model.v_parameterization` / `model.sdxl` values that agree with it."""
        prediction = prediction_type or self.prediction_type
        return {"v2": self.naming == "sd2", "v_parameterization": prediction == "v_prediction",
                "sdxl": self.naming == "sdxl"}

    def matches_legacy_flags(self, *, v2: bool, v_parameterization: bool, sdxl: bool) -> bool:
        """Whether the old booleans name this family (read once, when a YAML or Kohya file is loaded)."""
        if not self.has_legacy_flags:
            return False
        mine = self.legacy_flags()
        if sdxl or mine["sdxl"]:
            return sdxl and mine["sdxl"]
        if v2 != mine["v2"]:
            return False
        return not v2 or v_parameterization == mine["v_parameterization"]

    # ------------------------------------------------------------------ settings (torch-free)

    def settings_sections(self) -> Mapping[str, list[Any]]:
        """The family's own settings (`engine.schema.Setting`s), by where they go in the schema:
        "model" (after the Model screen's settings), "loading" (after the loading settings) or
        "objective" (after the objective's). The schema (`engine.config.runconfig`) collects them
        from every registered family. SD families: none."""
        return {}

    def adjust_settings(self, settings: list[Any]) -> list[Any]:
        """The whole schema, with the generic settings this family cannot use marked (their
        `applies` says why for this family). Called once when the schema is built."""
        return settings

    def settings_rules(self, values: Mapping[str, Any], settings: Any) -> list[Any]:
        """Problems (`engine.problems.Problem`) of a complete run's values that concern this family's
        settings; called for every registered family on every run (`settings` is the schema table)."""
        return []

    def vram_reference(self, path: str = "") -> dict[str, Any]:
        """The family's real-size configs for the VRAM estimate (read from `vram_reference_file`); `path`
        is the run's model path, for a family whose reference models differ in size (SD 3.5 Medium/Large)."""
        import json

        if self.vram_reference_file is None:
            raise ValueError(f"{self.label} ships no reference configs for the VRAM estimate")
        return json.loads(Path(self.vram_reference_file).read_text(encoding="utf-8"))

    def detects_folder(self, model_index: Mapping[str, Any]) -> bool:
        """Whether a diffusers folder's `model_index.json` shows this family by itself (its pipeline
        or denoiser class). SD families: no, `engine.families.detect` tells them apart by their configs."""
        return False

    def detects_single_file(self, keys: Any) -> bool:
        """Whether a single file's tensor names show this family (names only: no widths, no torch).
        SD families: no, `engine.families.detect` reads the original SD checkpoints' markers."""
        return False

    def memory_walk(self) -> Any:
        """A torch-free walk of this family's own layers for the VRAM estimate, or None: engine/vram's
        built-in walk of an SD UNet or a FLUX.1 transformer applies. Otherwise an object with
        denoiser_parameters(config), text_encoder_parameters(config), lora_layers(config) -> [(in, out,
        kernel, is_conv)], image_tokens(width, height, vae_scale), text_tokens(values), activations(config,
        *, image_tokens, text_tokens, batch, checkpointing, lora_rank) -> (kept, recompute) element counts
        by dtype class ("compute", "norm", "stat", "cast"), and backward_scratch(config, *, image_tokens,
        text_tokens, batch, compute_bytes, fp8) -> bytes."""
        return None

    def guessed_from_path(self, path: str) -> bool:
        """Whether a model path names this family when nothing else says (`model.family: auto` before
        the model is read: the VRAM estimate's guess). SD families: no; FLUX.1: "flux" in the path."""
        return False

    def estimate_counts(self) -> Any:
        """The family's own torch-free counting of its denoiser for the memory and file-size estimates, or
        None (the default) for engine.vram's own walk of SD UNets and FLUX.1 transformers. An object (a
        module will do) with plain-number functions: `parameters(config)`; `lora_layers(config)`, the
        adapted layers as (in, out, kernel side, is a convolution); `file_numbers(config, rank, values)`,
        (numbers, modules) of the denoiser part of its LoRA file; `text_tokens(values)`;
        `image_tokens(config, latent_width, latent_height)`; `activations(config, *, image_tokens,
        text_tokens, batch, checkpointing, lora_rank)` -> {"kept": slots, "recompute": slots} with slots
        {"compute", "norm", "stat", "cast"} as in engine.vram.activations; `backward_scratch(config, *,
        image_tokens, text_tokens, batch, compute_bytes, fp8)` -> bytes."""
        return None

    # ------------------------------------------------------------------ metadata

    def modelspec_architecture(self) -> str:
        return self.architecture + "/lora"

    def version_for(self, v_parameterization: bool) -> str:
        """`ss_base_model_version` as sd-scripts writes it: `_v` marks v-prediction on SD 1.x/2.x."""
        if self.marks_v_in_version and v_parameterization and not self.base_model_version.endswith("_v"):
            return self.base_model_version + "_v"
        return self.base_model_version

    def run_problems(self, values: Mapping[str, Any], settings: Any) -> list[Any]:
        """Settings this family cannot train with, checked once the model is loaded (`model.family: auto`
        learns the family only then; `settings` is the schema table). SD families: none beyond the
        validation rules."""
        return []

    def finish_metadata(self, metadata: dict[str, str], cfg: Any, base: Any) -> dict[str, str]:
        """The family's own metadata on top of the common keys (SD: nothing to add)."""
        return metadata

    # ------------------------------------------------------------------ loading (torch inside)

    def claims_source(self, kind: str, location: str, requested: str | None) -> bool:
        """Whether this family loads `model.path` itself (`kind`: builtin, folder, single_file or hub;
        `requested`: the run's `model.family`). SD families: no, the shared diffusers/single-file
        loader in `engine.families.load` does; a family with other components (FLUX.1) says yes."""
        return False

    def load_base(self, kind: str, location: str, path: str, *, family: str | None, config_dir: str | None,
                  dtype: Any, cache_dir: str | None, companions: Mapping[str, str | None]) -> Any:
        """Load a model this family claimed, as an `engine.models.base_model.BaseModel` (with `spec=self`).
        `companions`: the single-file companions by setting name (`model.clip_l`, …); raise
        `ProblemError` for anything the user can fix."""
        raise NotImplementedError(f"{self.label} claims no model source")

    # ------------------------------------------------------------------ LoRA files (torch inside)

    def write_lora(self, path: Any, weights: Any, *, base: Any, metadata: Mapping[str, str], save_dtype: Any,
                   fmt: str) -> None:
        from engine.lorafile.io import save_lora_file

        save_lora_file(path, weights, family=self.naming, unet_config=base.unet.config, metadata=metadata,
                       save_dtype=save_dtype, fmt=fmt)

    def read_lora(self, path: Any, base: Any) -> Any:
        """A LoRA file to continue from, as the neutral structure (its `family_guess` is a naming)."""
        from engine.lorafile.io import read_lora_file

        from engine.families.registry import read_family

        # SDXL files use LDM block numbers, which only this UNet's config turns into its module paths
        return read_lora_file(path, unet_config=base.unet.config if self.ldm_unet_names else None,
                              read_name=read_family)

    # ------------------------------------------------------------------ native resolution

    def native_resolution(self, denoiser_config: Mapping[str, Any] | None,
                          vae_config: Mapping[str, Any] | None) -> int:
        """The side the model was trained at: the denoiser's latent `sample_size` × the VAE's factor.

        Falls back to the family's reference side when a config does not say.
        """
        sample = (denoiser_config or {}).get("sample_size")
        if isinstance(sample, (list, tuple)):
            sample = max(sample) if sample else None
        channels = (vae_config or {}).get("block_out_channels")
        if not isinstance(sample, int) or sample <= 0 or not isinstance(channels, (list, tuple)) or not channels:
            return self.native_side
        return sample * 2 ** (len(channels) - 1)

    # ------------------------------------------------------------------ training (torch inside)

    def objective(self, cfg: Any, base: Any, *, generator: Any, weight_dtype: Any, device: Any) -> Any:
        """The run's training objective: an object whose `loss(...)` the loop calls once per batch."""
        from engine.diffusion.objective import DiffusionObjective

        return DiffusionObjective(cfg, base, generator=generator, weight_dtype=weight_dtype, device=device)

    def text_options(self, cfg: Any, base: Any) -> dict[str, Any]:
        """The run's settings `encode_text` takes besides the captions."""
        return {"clip_skip": cfg.training.clip_skip, "max_token_length": cfg.training.max_token_length}

    def lora_targets(self, denoiser: Any) -> list[str] | None:
        """The denoiser's module paths a LoRA trains; None: the layers inside its attention blocks."""
        return None

    def network_targets(self, denoiser: Any, values: Mapping[str, Any]) -> list[str] | None:
        """The module paths this run's LoRA trains (the family's targets, narrowed by the run's settings)."""
        return self.lora_targets(denoiser)

    # ------------------------------------------------------------------ block swapping (memory savers)

    def block_counts(self, denoiser_config: Mapping[str, Any]) -> dict[str, int]:
        """Torch-free: the swappable block lists of a denoiser config and their lengths ({} if none)."""
        return {}

    def swap_split(self, blocks_to_swap: int) -> dict[str, int]:
        """How `training.blocks_to_swap` spreads over the block lists ({} where nothing swaps)."""
        return {}

    def max_blocks_to_swap(self, denoiser_config: Mapping[str, Any]) -> int:
        """The largest `blocks_to_swap` that leaves two blocks of every list on the GPU (sd-scripts' limit)."""
        counts = self.block_counts(denoiser_config)
        best = 0
        while counts and all(n <= counts[g] - 2 for g, n in self.swap_split(best + 1).items()):
            best += 1
        return best

    def swappable_blocks(self, denoiser: Any) -> dict[str, list[Any]]:
        """The denoiser's block lists by name, in the order they run ({} where nothing swaps)."""
        return {}

    def prepare_denoiser(self, denoiser: Any, cfg: Any) -> None:
        """Attention backend for training (SD UNets: PyTorch's fused attention, or xformers)."""
        if cfg.training.attention == "xformers":
            denoiser.enable_xformers_memory_efficient_attention()
        else:
            from diffusers.models.attention_processor import AttnProcessor2_0

            denoiser.set_attn_processor(AttnProcessor2_0())

    def training_target(self, scheduler: Any, latents: Any, noise: Any, timesteps: Any,
                        prediction_type: str | None = None) -> Any:
        """What the denoiser is trained to output: the noise (ε) or the velocity (v)."""
        from engine.diffusion.loss import training_target

        return training_target(scheduler, latents, noise, timesteps,
                               (prediction_type or self.prediction_type) == "v_prediction")

    def encode_text(self, tokenizers: list[Any], encoders: list[Any], captions: list[str], *, clip_skip: int,
                    max_token_length: int, device: Any) -> Any:
        """The captions' conditioning (hidden states, and a pooled vector where the family uses one)."""
        from engine.diffusion.text import encode_captions

        return encode_captions(tokenizers, encoders, captions, sdxl=self.text_conditioning == "clip_pair_pooled",
                               clip_skip=clip_skip, max_token_length=max_token_length, device=device)

    def conditioning_class(self) -> type:
        """The dataclass `encode_text` returns; the text-output disk cache reads its files back into it."""
        from engine.diffusion.text import Conditioning

        return Conditioning

    def denoise(self, denoiser: Any, noisy: Any, timesteps: Any, conditioning: Any, *,
                size_conditions: Any, dtype: Any) -> Any:
        """One call of the UNet on noisy latents with the captions' conditioning."""
        added = None
        if self.size_conditioning:
            added = {"text_embeds": conditioning.pooled.to(dtype), "time_ids": size_conditions.to(noisy.device, dtype=dtype)}
        return denoiser(noisy, timesteps, conditioning.hidden.to(dtype), added_cond_kwargs=added).sample

    def sample_scheduler(self, sampler: str, base: Any) -> Any:
        """The diffusers scheduler samples are drawn with (`sampling.sampler` over the model's config)."""
        from engine.diffusion.samplers import build_sampler

        return build_sampler(sampler, base.scheduler_config, base.prediction_type)

    def fp8_keep_patterns(self) -> tuple[str, ...]:
        """Name patterns (regular expressions, searched) of denoiser layers that fp8 base weights
        leave in the compute dtype, because float8 would cost too much precision there."""
        return ()

    def sample_defaults(self, source: str) -> dict[str, Any]:
        """Steps and CFG (`{"steps": int, "cfg": float}`, either may be left out) for sample prompts that
        set none, for the base loaded from `source`; {} keeps the generic defaults (a step-distilled
        model needs its own few steps and no guidance)."""
        return {}

    def sample_options(self, prompt: Any, clip_skip: int) -> dict[str, Any]:
        """The family's own pipeline arguments for one sample prompt."""
        return {"negative_prompt": prompt.negative or None, "clip_skip": clip_skip - 1 or None}

    def pipeline(self, *, vae: Any, text_encoders: list[Any], tokenizers: list[Any], denoiser: Any,
                 scheduler: Any) -> Any:
        """A diffusers pipeline over loaded components, for samples."""
        import diffusers

        pipeline_class = getattr(diffusers, self.pipeline_class)
        if len(text_encoders) == 2:
            return pipeline_class(vae=vae, text_encoder=text_encoders[0], text_encoder_2=text_encoders[1],
                                  tokenizer=tokenizers[0], tokenizer_2=tokenizers[1], unet=denoiser,
                                  scheduler=scheduler)
        return pipeline_class(vae=vae, text_encoder=text_encoders[0], tokenizer=tokenizers[0], unet=denoiser,
                              scheduler=scheduler, safety_checker=None, feature_extractor=None,
                              requires_safety_checker=False)
