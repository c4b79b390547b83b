"""Every latent-sequence generator, registered once: `smdiff sample`, `smdiff evaluate`'s Table 1 rows and
the demo read this list.

Adding a generator is one file (a class with the `base.Generator` interface) and one `Registration`
below: its name (the `--generator` value and its samples folder), its Table 1 row, the modes it does
(`unconditional`, `infilling`: what the demo samples and Table 1 shows), whether it needs a trained
prior (a train workdir, `--prior_workdir`), and how to build it from a `BuildContext`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from smdiff.codec.latent_codec import LatentScaling
from smdiff.generators import base
from smdiff.generators.baselines import InterpolationGenerator, PriorGenerator
from smdiff.generators.diffusion import DiffusionGenerator
from smdiff.generators.mdn import MDNGenerator
from smdiff.tasks.latent_diffusion import LatentDiffusionTask
from smdiff.tasks.mdn import MDNTask


@dataclasses.dataclass(frozen=True)
class SamplerOptions:
    """How the generators sample: the diffusion sampler, its step count (None = all N diffusion steps) and
    stochasticity, the MDN's temperature, and the space interpolation slerps in ('full' or 'active')."""

    sampler: str = "ddpm"
    num_sampling_steps: int | None = None
    eta: float = 0.0
    temperature: float = 1.0
    interpolation_space: str = "full"


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """What a generator may be built from.

    Attributes:
      scaling: the latent scaling of the dataset the samples live in.
      held_latents: [m, k, d] real scaled latents (the test split): k, and interpolation's endpoints.
      prior: (task, params) of the trained prior, for generators that need one.
      options: sampler settings.
    """

    scaling: LatentScaling
    held_latents: np.ndarray
    prior: tuple[object, object] | None = None
    options: SamplerOptions = SamplerOptions()

    @property
    def window_chunks(self) -> int:
        """k, latents per sequence."""
        return self.held_latents.shape[1]

    def trained(self, task_type: type) -> tuple[object, object]:
        """(task, params) of the prior, checked to be a `task_type`."""
        if self.prior is None:
            raise ValueError(f"this generator needs a trained {task_type.__name__} (--prior_workdir)")
        task, params = self.prior
        if not isinstance(task, task_type):
            raise TypeError(f"the prior workdir trained a {type(task).__name__}, not a {task_type.__name__}")
        return task, params


@dataclasses.dataclass(frozen=True)
class Registration:
    name: str
    table_row: str
    modes: tuple[str, ...]
    needs_prior: bool
    build: Callable[[BuildContext], base.Generator]


def _diffusion(context: BuildContext) -> DiffusionGenerator:
    task, params = context.trained(LatentDiffusionTask)
    options = context.options
    return DiffusionGenerator(task, params, context.window_chunks, sampler=options.sampler,
                              num_sampling_steps=options.num_sampling_steps, eta=options.eta)


def _mdn(context: BuildContext) -> MDNGenerator:
    task, params = context.trained(MDNTask)
    return MDNGenerator(task.model, params, window_chunks=context.window_chunks,
                        temperature=context.options.temperature)


GENERATORS: dict[str, Registration] = {registration.name: registration for registration in (
    Registration("diffusion", "Diffusion", ("unconditional", "infilling"), True, _diffusion),
    Registration("mdn", "Autoregression (MDN)", ("unconditional",), True, _mdn),
    Registration("interpolation", "Interpolation", ("unconditional", "infilling"), False,
                 lambda context: InterpolationGenerator(context.scaling, context.held_latents,
                                                        space=context.options.interpolation_space)),
    Registration("prior", "N(0,I) prior", ("unconditional", "infilling"), False,
                 lambda context: PriorGenerator(context.scaling, context.window_chunks)),
)}
