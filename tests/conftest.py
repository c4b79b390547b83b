"""Shared test set-up.

Eight simulated CPU devices for every test, so sharded code paths run as they would on 8 accelerators;
this must be set before jax is first imported.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
