"""Base models: built-in tiny models, loading, and family detection.

Kept free of imports so `engine.families.detect` and `describe_model_path` stay cheap (no torch);
import the submodules directly.
"""
