"""Generic diffusion training pieces the families build their objectives from (torch inside).

Losses and their weights, noise draws, the DDPM objective, CLIP caption encoding and the sample
schedulers. Nothing here names a model family: a family picks and combines these in its hooks.
Import the submodules directly (this package imports nothing, so listing it stays cheap).
"""
