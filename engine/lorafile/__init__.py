"""LoRA files in the Kohya/A1111 layout: key names, sd-scripts metadata, hashes, save/read.

Kept light: importing the package imports no torch; use the submodules
(`engine.lorafile.io`, `.names`, `.metadata`, `.hashes`).
"""
