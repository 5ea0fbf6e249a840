"""tui-lora: a terminal app for Stable Diffusion LoRA training."""

__version__ = "0.1.0"
