"""Hostile sd-scripts options, dataset configs and command words: each gets an import or a
ProblemError naming a field, never a traceback."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.kohya.sources import Source, convert_source
from engine.problems import ProblemError

_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                  st.sampled_from(["1e400", "nan", "768,768", "algo=loha", "conv_dim=x", "=", "'", "0.5"]))
_values = st.one_of(_leaf, st.lists(_leaf, max_size=3), st.dictionaries(st.text(max_size=5), _leaf, max_size=2))
_options = st.dictionaries(st.sampled_from([
    "network_module", "network_args", "network_dim", "resolution", "optimizer_type", "optimizer_args", "learning_rate",
    "unet_lr", "text_encoder_lr", "lr_warmup_steps", "max_train_epochs", "max_train_steps", "xformers", "sdpa",
    "network_train_unet_only", "sample_prompts", "mixed_precision", "ae", "gpu_ids", "use_8bit_adam", "lowram",
    "noise_offset", "multires_noise_iterations", "pretrained_model_name_or_path", "lr_scheduler_type"]),
    _values, max_size=8)
_subset = st.dictionaries(st.sampled_from(["image_dir", "num_repeats", "is_reg", "keep_tokens", "class_tokens",
                                           "caption_extension", "flip_aug", "metadata_file", "resolution"]), _values,
                          max_size=5)
_dataset_docs = st.fixed_dictionaries({"datasets": st.lists(st.one_of(
    st.fixed_dictionaries({"subsets": st.lists(st.one_of(_subset, _leaf), max_size=3)}, optional={"resolution": _values}),
    _leaf), max_size=2)}, optional={"general": st.one_of(_subset, _leaf)})
_HOSTILE = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def _answers(source: Source) -> None:
    try:
        convert_source(source)
    except ProblemError as exc:
        assert exc.problems and all(p.field and p.message for p in exc.problems)


@_HOSTILE
@given(_options)
def test_any_sd_scripts_options_import_or_are_refused_clearly(options):
    _answers(Source("script_json", Path("/nonexistent/cfg.json"), options))
    _answers(Source("config_toml", Path("/nonexistent/cfg.toml"), options))


@_HOSTILE
@given(_dataset_docs)
def test_any_dataset_config_imports_or_is_refused_clearly(document):
    _answers(Source("dataset_toml", Path("/nonexistent/ds.toml"), document))


@_HOSTILE
@given(st.lists(st.one_of(st.sampled_from(["--network_dim", "--resolution", "--optimizer_args", "--config_file",
                                            "&&", "'", '"', "\\", "^\n", "--", "--=", "train_network.py"]),
                          st.text(max_size=8)), max_size=10))
def test_any_command_words_import_or_are_refused_clearly(words):
    _answers(Source("command", Path("/nonexistent/cmd.sh"), "accelerate launch train_network.py " + " ".join(words)))
