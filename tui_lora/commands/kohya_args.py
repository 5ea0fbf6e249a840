"""The import-kohya and export-kohya arguments: argparse only, so the CLI's parser stays light."""

from __future__ import annotations

import argparse

IMPORT_DESCRIPTION = "convert a Kohya SS GUI config, sd-scripts TOML or command line into a run file"
IMPORT_FILE_HELP = ("Kohya SS GUI config or preset (.json), sd-scripts --config_file or --dataset_config (.toml), "
                    "or a file holding an `accelerate launch … train_network.py --…` command line")


EXPORT_DESCRIPTION = "write a run file as a Kohya SS GUI LoRA config (.json) or as sd-scripts TOML files and command"


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="run file (.yaml)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("-o", "--output", help="Kohya SS GUI config to write (.json, the LoRA tab's)")
    target.add_argument("--toml", metavar="DIR", help="folder for sd-scripts' config.toml, dataset.toml, "
                                                      "prompts.txt and train.sh (the accelerate launch line)")
    parser.add_argument("--force", action="store_true", help="replace output files that exist")
