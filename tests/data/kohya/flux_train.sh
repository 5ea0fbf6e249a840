#!/bin/bash
# FLUX.1 [dev] LoRA with sd-scripts (sd3 branch), 24 GB card: fp8 base, cached text encoders.
accelerate launch --mixed_precision bf16 --num_cpu_threads_per_process 1 flux_train_network.py \
  --pretrained_model_name_or_path /models/flux/flux1-dev.safetensors \
  --clip_l /models/clip/clip_l.safetensors \
  --t5xxl /models/clip/t5xxl_fp16.safetensors \
  --ae /models/vae/ae.safetensors \
  --cache_latents_to_disk --save_model_as safetensors --sdpa --persistent_data_loader_workers \
  --max_data_loader_n_workers 2 --seed 42 --gradient_checkpointing --mixed_precision bf16 \
  --save_precision bf16 --network_module networks.lora_flux --network_dim 16 --network_alpha 16 \
  --network_train_unet_only --optimizer_type adamw8bit --learning_rate 1e-4 \
  --cache_text_encoder_outputs --cache_text_encoder_outputs_to_disk --fp8_base \
  --highvram --max_train_epochs 16 --save_every_n_epochs 4 \
  --dataset_config dataset_two_subsets.toml --output_dir /out/flux --output_name flux-ayaka \
  --timestep_sampling shift --discrete_flow_shift 3.1582 --model_prediction_type raw \
  --guidance_scale 1.0 --apply_t5_attn_mask --t5xxl_max_token_length 512 \
  --noise_offset 0.05 --min_snr_gamma 5
