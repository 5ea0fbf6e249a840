"""Stable Diffusion 3.5 (Medium and Large): an MMDiT flow-matching transformer with CLIP-L, CLIP-G and T5-XXL.

The family object is registered once the family-packages structure is in place; the modules here
(facts, tiny model, objective, LoRA names and files) need nothing from other families.
"""
