"""Training the piano-roll U-Net as an x0-predictor of the binomial diffusion (Atassi 2023), as a Task.

Batches hold `roll`: uint8 [batch, time, pitch] binary piano rolls, or voice-channel rolls [batch, time, pitch, V]
(the `pianorolls` dataset; `bach_chorales_voices` for the latter; other features are ignored). Each example gets
a step t ~ U{1..T}, is noised to x_t in closed form, and the network predicts x0; the loss is the paper's L1
between the predicted probabilities and x0, or the binary cross-entropy of its logits. A conditioned U-Net
(`UNetConfig.conditioned`) also reads, per example, a random conditioning mask (`conditioning.random_masks`:
nothing, the top or bottom voice, a time span, a prefix) and the clean cells under it; its loss and metrics are
then over the cells it has to generate.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from smdiff.diffusion import binomial, conditioning
from smdiff.models.unet import UNet

LOSSES = ("l1", "bce")


@dataclasses.dataclass(frozen=True)
class BinomialTask:
    """x0 prediction under q(x_t | x0) = Bernoulli(x0 (1 - t/T) + r t/T); r = `density` of the train rolls."""

    model: UNet
    density: float
    loss_type: str = "l1"

    def __post_init__(self):
        if self.loss_type not in LOSSES:
            raise ValueError(f"loss_type must be one of {LOSSES}, got {self.loss_type!r}")

    @property
    def process(self) -> binomial.BinomialProcess:
        return binomial.BinomialProcess(density=self.density, num_steps=self.model.config.num_steps)

    def _rolls(self, batch: dict[str, jax.Array]) -> jax.Array:
        roll = batch["roll"]
        if roll.ndim not in (3, 4):
            raise ValueError(f"BinomialTask expects rolls [batch, time, pitch] or [batch, time, pitch, voices], "
                             f"got {roll.shape}")
        return roll.astype(jnp.float32)

    @property
    def conditioned(self) -> bool:
        """Whether the model reads the known cells and their mask (trained on random conditioning masks)."""
        return self.model.config.conditioned

    def _apply(self, params, x_t: jax.Array, t: jax.Array, known: jax.Array | None, mask: jax.Array | None
               ) -> jax.Array:
        """Logits of x_t's shape [B, T, P(, V)]; a conditioned model with no known cells given reads an all-False
        mask."""
        if not self.conditioned:
            if mask is not None:
                raise ValueError("this model was trained without conditioning inputs: clamp the known cells instead")
            return self.model.apply({"params": params}, x_t, t)
        if mask is None:
            known, mask = jnp.zeros_like(x_t), jnp.zeros(x_t.shape, bool)
        return self.model.apply({"params": params}, x_t, t, known, jnp.broadcast_to(mask, x_t.shape))

    def init(self, rng: jax.Array, batch: dict[str, jax.Array]):
        x0 = self._rolls(batch)
        t = jnp.ones(x0.shape[:1], jnp.int32)
        extra = (x0, jnp.zeros(x0.shape, bool)) if self.conditioned else ()
        return self.model.init(rng, x0, t, *extra)["params"]

    def denoiser(self, params, known: jax.Array | None = None, mask: jax.Array | None = None) -> binomial.Denoiser:
        """(x_t [B, T, P(, V)], t [B]) -> predicted P(x0 = 1) of x_t's shape, for the samplers. known (x_t's shape)
        and mask (broadcastable, True = given) feed a conditioned model's extra inputs (None: nothing given)."""
        return lambda x_t, t: jax.nn.sigmoid(self._apply(params, x_t, t, known, mask))

    def _metrics(self, params, x0: jax.Array, rng: jax.Array) -> dict[str, jax.Array]:
        step_rng, noise_rng = jax.random.split(rng)
        t = jax.random.randint(step_rng, x0.shape[:1], 1, self.process.num_steps + 1)  # [B]
        x_t = binomial.q_sample(self.process, noise_rng, x0, t)
        mask = conditioning.random_masks(jax.random.fold_in(rng, 1), x0) if self.conditioned else None
        logits = self._apply(params, x_t, t, x0, mask)  # [B, T, P(, V)]
        # Scored cells: those the model generates (all, without conditioning).
        scored = jnp.ones_like(x0) if mask is None else (~mask).astype(jnp.float32)
        num_scored = jnp.maximum(jnp.sum(scored), 1.0)
        prediction = jax.nn.sigmoid(logits)
        predicted_on = (prediction > 0.5) & (scored > 0)
        true_positives = jnp.sum(predicted_on & (x0 > 0.5))
        return {
            "l1": jnp.sum(scored * jnp.abs(prediction - x0)) / num_scored,
            "bce": jnp.sum(scored * optax.sigmoid_binary_cross_entropy(logits, x0)) / num_scored,
            # Cell-level F1 of the thresholded prediction (pooled over the batch).
            "cell_f1": 2.0 * true_positives / jnp.maximum(jnp.sum(predicted_on) + jnp.sum(scored * x0), 1.0),
        }

    def loss(self, params, batch: dict[str, jax.Array], rng: jax.Array, step: jax.Array
             ) -> tuple[jax.Array, dict[str, jax.Array]]:
        del step
        metrics = self._metrics(params, self._rolls(batch), rng)
        return metrics[self.loss_type], metrics

    def evaluate(self, params, batch: dict[str, jax.Array], rng: jax.Array) -> dict[str, jax.Array]:
        return self._metrics(params, self._rolls(batch), rng)
