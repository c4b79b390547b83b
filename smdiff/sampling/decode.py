"""Scaled latent sequences -> melody events, through the latent scaling and the melody VAE's decoder."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from smdiff.codec.latent_codec import LatentScaling
from smdiff.models.melody_vae import MelodyVAE
from smdiff.training import sharding


class LatentDecoder:
    """x [n, k, d] (the priors' space) -> events int32 [n, k * 32] (argmax decoding, the paper's ~T=0.001).

    Unused VAE dims are refilled with N(0, 1) draws from `rng` (REFERENCE.md); the decoder runs jitted and
    sharded over every device, batch padded to a multiple of the device count.
    """

    def __init__(self, model: MelodyVAE, params, scaling: LatentScaling, temperature: float = 0.0):
        self.scaling = scaling
        self._mesh = sharding.make_mesh()
        self._params = jax.device_put(params, sharding.replicated(self._mesh))
        batch = sharding.batch_sharding(self._mesh)

        def decode(params, rng, x):
            z_rng, sample_rng = jax.random.split(rng)
            z = scaling.to_vae(x, z_rng)  # [n, k, z_size]
            flat = z.reshape(-1, z.shape[-1])  # [n * k, z_size]: every 2-bar latent decodes on its own
            events = model.apply({"params": params}, flat, sample_rng, temperature, method=model.decode)
            return events.reshape(x.shape[0], -1)  # [n, k * 32]

        self._decode = jax.jit(decode, in_shardings=(sharding.replicated(self._mesh), None, batch),
                               out_shardings=batch)

    def __call__(self, rng: jax.Array, x: np.ndarray) -> np.ndarray:
        n = len(x)
        devices = self._mesh.devices.size
        padded = -(-n // devices) * devices
        x = jnp.asarray(np.pad(np.asarray(x, np.float32), ((0, padded - n), (0, 0), (0, 0))))
        return np.asarray(self._decode(self._params, rng, x))[:n]

