"""Training the TransformerMDN baseline: negative log-likelihood with teacher forcing, as a Task for `smdiff.training.loop`.

Batches hold `latents`: float32 [batch, k, d], windows of scaled latents from the `melody_latents`
dataset (other features are ignored). The loss is -log p(x_i | x_<i) in nats averaged over every
(window, position), as the released code optimizes it: the per-window sum is k times larger, and under the
paper's global-norm clip at 1.0 that factor (32) would make clipping bite far more often. Both the
per-latent (`nll_per_latent`, the loss) and the per-window (`nll`) figures are reported.
"""
import dataclasses

import jax

from smdiff.models import gaussian_mixture
from smdiff.models.transformer_mdn import TransformerMDN


@dataclasses.dataclass(frozen=True)
class MDNTask:
    """Teacher-forced maximum likelihood for `model` (paper: Adam 3e-4, batch 128, x0.98 every 4000 steps)."""

    model: TransformerMDN

    def init(self, rng: jax.Array, batch: dict[str, jax.Array]):
        return self.model.init(rng, self._latents(batch))["params"]

    def _latents(self, batch: dict[str, jax.Array]) -> jax.Array:
        latents = batch["latents"]
        config = self.model.config
        if (latents.ndim != 3 or config.window_chunks not in (None, latents.shape[1])
                or config.latent_dim not in (None, latents.shape[2])):
            raise ValueError(f"MDNTask expects latents [batch, {config.window_chunks or 'k'}, "
                             f"{config.latent_dim or 'd'}], got {latents.shape}")
        return latents

    def log_likelihood(self, params, latents: jax.Array, rng: jax.Array | None = None) -> jax.Array:
        """log p(x_i | x_<i) [B, k] in nats of each latent of x [B, k, d]; dropout only when `rng` is given."""
        rngs = None if rng is None else {"dropout": rng}
        mixture = self.model.apply({"params": params}, latents, deterministic=rng is None, rngs=rngs)
        return gaussian_mixture.log_prob(mixture, latents)

    @staticmethod
    def _metrics(log_likelihood: jax.Array, latent_dim: int) -> dict[str, jax.Array]:
        nll = -log_likelihood.sum(-1).mean()  # per window
        return {
            "nll": nll,
            "nll_per_latent": nll / log_likelihood.shape[-1],
            "nll_per_dim": nll / (log_likelihood.shape[-1] * latent_dim),
            # The first latent has only the start token as context; the rest see their predecessors.
            "nll_first_latent": -log_likelihood[:, 0].mean(),
        }

    def loss(self, params, batch: dict[str, jax.Array], rng: jax.Array, step: jax.Array
             ) -> tuple[jax.Array, dict[str, jax.Array]]:
        dropout_rng = rng if self.model.config.dropout > 0 else None
        latents = self._latents(batch)
        metrics = self._metrics(self.log_likelihood(params, latents, dropout_rng), latents.shape[-1])
        return metrics["nll_per_latent"], {"loss": metrics["nll_per_latent"], **metrics}

    def evaluate(self, params, batch: dict[str, jax.Array], rng: jax.Array) -> dict[str, jax.Array]:
        latents = self._latents(batch)
        return self._metrics(self.log_likelihood(params, latents), latents.shape[-1])
