"""Training the 2-bar melody VAE: MusicVAE's objective and schedules as a Task for `smdiff.training.loop`.

Loss per chunk (Magenta's base_model.py): the cross-entropy summed over the 32 steps, plus
beta(step) * max(KL(q(z|x) || N(0, I)) - free_bits * ln 2, 0), the KL summed over the z dimensions;
both are averaged over the batch. beta(step) = max_beta * (1 - beta_rate^step) anneals the KL in.
Scheduled sampling feeds the decoder its own samples with a probability that grows with the step.
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from smdiff.models.melody_vae import MelodyVAE

SAMPLING_SCHEDULES = ("constant", "inverse_sigmoid", "exponential")


def kl_beta(step: jax.Array, max_beta: float, beta_rate: float) -> jax.Array:
    """The annealed KL weight max_beta * (1 - beta_rate^step); beta_rate 0 gives max_beta from step 1."""
    step = jnp.asarray(step, jnp.float32)
    if beta_rate == 0.0:
        return jnp.where(step > 0, max_beta, 0.0)
    # -expm1(step * ln(rate)) = 1 - rate^step without float32's rounding of a rate like 0.99999.
    return max_beta * -jnp.expm1(step * math.log(beta_rate))


def sampling_probability(step: jax.Array, schedule: str, rate: float) -> jax.Array:
    """Probability that a decoder input is the model's own sample (Magenta's lstm_utils schedules).

    constant: `rate`; inverse_sigmoid: 1 - rate / (rate + exp(step / rate)) (rate >= 1; 0.5 at
    step = rate * ln(rate)); exponential: 1 - rate^step (0 < rate < 1).
    """
    step = jnp.asarray(step, jnp.float32)
    if schedule == "constant":
        return jnp.asarray(rate, jnp.float32)
    if schedule == "inverse_sigmoid":
        return jax.nn.sigmoid(step / rate - math.log(rate))  # = 1 - rate / (rate + exp(step / rate))
    if schedule == "exponential":
        return 1.0 - jnp.power(rate, step)
    raise ValueError(f"unknown sampling_schedule {schedule!r}; expected one of {SAMPLING_SCHEDULES}")


def gaussian_kl(mu: jax.Array, sigma: jax.Array) -> jax.Array:
    """KL(N(mu, sigma^2) || N(0, 1)) per dimension, in nats. mu, sigma [..., z] -> [..., z]."""
    return 0.5 * (jnp.square(mu) + jnp.square(sigma) - 1.0) - jnp.log(sigma)


@dataclasses.dataclass(frozen=True)
class MelodyVAETask:
    """MusicVAE's training objective for `model`. Defaults are `cat-mel_2bar_big`'s.

    Batches hold `events`: int32 [batch, 32] class ids (other features are ignored).
    """

    model: MelodyVAE
    free_bits: float = 0.0  # bits of KL per chunk (summed over z) that cost nothing
    max_beta: float = 0.5
    beta_rate: float = 0.99999
    sampling_schedule: str = "inverse_sigmoid"
    sampling_rate: float = 1000.0

    def __post_init__(self):
        sampling_probability(0, self.sampling_schedule, self.sampling_rate)  # rejects an unknown schedule
        if self.sampling_schedule == "inverse_sigmoid" and self.sampling_rate < 1:
            raise ValueError(f"inverse_sigmoid sampling needs sampling_rate >= 1, got {self.sampling_rate}")
        if self.sampling_schedule == "exponential" and not 0 < self.sampling_rate < 1:
            raise ValueError(f"exponential sampling needs 0 < sampling_rate < 1, got {self.sampling_rate}")
        if self.sampling_schedule == "constant" and not 0 <= self.sampling_rate <= 1:
            raise ValueError(f"constant sampling needs 0 <= sampling_rate <= 1, got {self.sampling_rate}")
        if self.free_bits < 0 or self.max_beta < 0 or not 0 <= self.beta_rate <= 1:
            raise ValueError(f"need free_bits >= 0, max_beta >= 0 and 0 <= beta_rate <= 1: {self}")

    def init(self, rng: jax.Array, batch: dict[str, jax.Array]):
        init_rng, pass_rng = jax.random.split(rng)
        return self.model.init(init_rng, batch["events"], pass_rng)["params"]

    def loss(self, params, batch: dict[str, jax.Array], rng: jax.Array, step: jax.Array
             ) -> tuple[jax.Array, dict[str, jax.Array]]:
        events = batch["events"]  # [batch, 32]
        probability = sampling_probability(step, self.sampling_schedule, self.sampling_rate)
        logits, mu, sigma, _ = self.model.apply({"params": params}, events, rng, probability)
        reconstruction = optax.softmax_cross_entropy_with_integer_labels(logits, events).sum(-1)  # [batch]
        kl = gaussian_kl(mu, sigma).sum(-1)  # [batch] nats
        kl_cost = jnp.maximum(kl - self.free_bits * jnp.log(2.0), 0.0)
        beta = kl_beta(step, self.max_beta, self.beta_rate)
        loss = reconstruction.mean() + beta * kl_cost.mean()
        metrics = {
            "loss": loss,
            "reconstruction_loss": reconstruction.mean(),
            "kl_bits": kl.mean() / jnp.log(2.0),
            "kl_beta": beta,
            "sampling_probability": probability,
            # Per-step accuracy of this pass (its inputs partly the model's own samples).
            "accuracy": (jnp.argmax(logits, -1) == events).mean(),
        }
        return loss, metrics

    def evaluate(self, params, batch: dict[str, jax.Array], rng: jax.Array) -> dict[str, jax.Array]:
        """Teacher-forced loss terms on a sampled z, and the headline: events decoded by argmax from mu
        with no teacher forcing, compared with the input per step and per whole chunk."""
        events = batch["events"]
        logits, mu, sigma, _ = self.model.apply({"params": params}, events, rng, 0.0)
        reconstruction = optax.softmax_cross_entropy_with_integer_labels(logits, events).sum(-1)
        kl = gaussian_kl(mu, sigma)  # [batch, z]
        decoded = self.model.apply({"params": params}, mu, method=self.model.decode)  # [batch, 32]
        correct = decoded == events
        return {
            "reconstruction_loss": reconstruction.mean(),
            "kl_bits": kl.sum(-1).mean() / jnp.log(2.0),
            "kl_bits_per_dim": kl.mean() / jnp.log(2.0),
            "elbo_loss": (reconstruction + kl.sum(-1)).mean(),
            "teacher_forced_accuracy": (jnp.argmax(logits, -1) == events).mean(),
            "free_running_accuracy": correct.mean(),
            "chunk_accuracy": correct.all(-1).mean(),
            "mean_sigma": sigma.mean(),
        }
