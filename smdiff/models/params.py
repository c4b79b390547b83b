"""Counting a model's parameters (params, their shapes from `jax.eval_shape`, or any tree of arrays)."""
import jax
import numpy as np


def count_params(tree) -> int:
    """The number of scalars in every leaf of `tree` (arrays or `jax.ShapeDtypeStruct`s)."""
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))
