"""Training the diffusion prior over scaled latent sequences (Mittal et al. 2021) as a Task for `smdiff.training.loop`.

Batches hold `latents`: float32 [batch, k, d], the active latent dims scaled to [-1, 1] (melody_latents).
The loss is the epsilon-prediction MSE at a continuous noise level (WaveGrad style), averaged over the
batch, positions and dims. Evaluation adds the same error at fixed steps t, so learning progress at each
noise level is visible, unlike in the loss whose noise level is random.
"""
import dataclasses

import jax
import jax.numpy as jnp

from smdiff.diffusion import gaussian
from smdiff.models.transformer_ddpm import TransformerDDPM


@dataclasses.dataclass(frozen=True)
class LatentDiffusionTask:
    """The paper's diffusion objective for `model`; defaults are the paper's schedule."""

    model: TransformerDDPM
    num_steps: int = 1000
    beta_start: float = 1e-6
    beta_end: float = 0.01
    probe_steps: tuple[int, ...] = (10, 100, 300, 600, 900)  # fixed steps t of the evaluation probe
    feature: str = "latents"

    def __post_init__(self):
        # gin passes lists; the frozen dataclass must stay hashable.
        object.__setattr__(self, "probe_steps", tuple(int(t) for t in self.probe_steps))
        if not all(1 <= t <= self.num_steps for t in self.probe_steps):
            raise ValueError(f"probe_steps must lie in 1..{self.num_steps}, got {self.probe_steps}")
        self.schedule  # validates the schedule's numbers now, not at the first step

    @property
    def schedule(self) -> gaussian.Schedule:
        return gaussian.linear_schedule(self.num_steps, self.beta_start, self.beta_end)

    def eps_fn(self, params, dropout_rng: jax.Array | None = None) -> gaussian.EpsFn:
        """The denoiser as eps(x_t [B, k, d], noise_level [B]); dropout is on only with a dropout_rng."""

        def eps(x_t: jax.Array, noise_level: jax.Array) -> jax.Array:
            return self.model.apply(
                {"params": params},
                x_t,
                noise_level,
                deterministic=dropout_rng is None,
                rngs=None if dropout_rng is None else {"dropout": dropout_rng},
            )

        return eps

    def init(self, rng: jax.Array, batch: dict[str, jax.Array]):
        x0 = batch[self.feature]  # [batch, k, d]
        return self.model.init(rng, x0, jnp.ones(x0.shape[:1]))["params"]

    def loss(self, params, batch: dict[str, jax.Array], rng: jax.Array, step: jax.Array):
        del step  # the objective does not change over training
        noise_rng, dropout_rng = jax.random.split(rng)
        eps = self.eps_fn(params, dropout_rng)
        loss = gaussian.training_loss(eps, self.schedule, batch[self.feature], noise_rng).mean()
        return loss, {"loss": loss}

    def evaluate(self, params, batch: dict[str, jax.Array], rng: jax.Array) -> dict[str, jax.Array]:
        x0 = batch[self.feature]
        eps = self.eps_fn(params)
        loss_rng, *probe_rngs = jax.random.split(rng, 1 + len(self.probe_steps))
        metrics = {"loss": gaussian.training_loss(eps, self.schedule, x0, loss_rng).mean()}
        for t, probe_rng in zip(self.probe_steps, probe_rngs):
            metrics[f"eps_mse_t{t}"] = gaussian.denoising_error(eps, self.schedule, x0, t, probe_rng).mean()
        return metrics
