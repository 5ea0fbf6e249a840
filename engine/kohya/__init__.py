"""Kohya both ways: sd-scripts configs, dataset configs and command lines in (beside the Kohya GUI
.json that `engine.config.kohya_import` converts), and the GUI .json or sd-scripts TOML out.

- `sources`: what a file is, and its import through the one GUI conversion.
- `script_options`: sd-scripts option names and defaults → the GUI's keys.
- `toml_config`, `dataset_config`, `command_line`: the readers.
- `export`: a run file → GUI .json, or sd-scripts config + dataset TOML + command.
"""
