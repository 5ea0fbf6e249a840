"""The trained network: LoRA / LoCon / LoHa / LoKr adapters added to the UNet and text encoders.

`inject` adds the adapters with peft and picks the layers Kohya's scripts train, `regularizers`
holds the network/rank/module dropouts and max-norm, `state` moves the trained tensors in and out
in the neutral structure the LoRA file writer names. This package file stays light: it imports no
torch, so `engine.config` can name the network types without paying for peft.
"""

NETWORK_TYPES = ("lora", "locon", "loha", "lokr", "dylora")
COMPONENTS = ("unet", "text_encoder", "text_encoder_2")
