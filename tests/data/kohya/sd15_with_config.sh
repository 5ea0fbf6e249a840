# The config file holds the settings; the flags here override two of them.
accelerate launch --num_processes 2 --gpu_ids 0,1 --multi_gpu train_network.py \
  --config_file sdscripts_config.toml \
  --learning_rate 2e-4 --unet_lr 2e-4 --network_dim 64
