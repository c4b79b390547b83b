"""MusicVAE's 2-bar melody model (`cat-mel_2bar_*`, Roberts et al. 2018) in Flax linen.

A bidirectional LSTM reads the 32 one-hot events of a chunk; its two final hidden states give the mean and
(softplus) scale of a diagonal Gaussian posterior over z. A stack of LSTMs decodes z autoregressively: its
initial (c, h) states come from one tanh dense layer on z, and z is concatenated to every step's input
(the previous event as a one-hot; zeros at the first step). Logits over the 90 event classes.

The weights are laid out exactly as Magenta's TF1 graph stores them, so a published checkpoint converts
one tensor to one tensor (`magenta_checkpoint.py`): every LSTM layer is a fused `kernel`
[input + units, 4 * units] (rows: the layer input, then the recurrent h; columns: the gates i, j, f, o as
in TF's LSTMBlockCell) and a `bias` [4 * units], with a forget bias of 1.0 added at run time, not stored.

`dtype` (config) is the compute dtype of the LSTMs' recurrent and layer-to-layer matmuls ('bfloat16' for
mixed precision, accumulated in float32); parameters, the gate arithmetic and cell states, the posterior
(mu, sigma) and the output logits stay float32.
"""
import dataclasses

import jax
import jax.numpy as jnp
from flax import linen as nn

# TF's LSTMBlockCell adds this to the forget gate's pre-activation; it is not part of the stored bias.
FORGET_BIAS = 1.0

# Magenta initialises the mu, sigma and z-to-state projections with N(0, 0.001^2) kernels.
_SMALL_NORMAL = nn.initializers.normal(stddev=0.001)

LSTMState = tuple[jax.Array, jax.Array]  # (c, h), each [batch, units]


@dataclasses.dataclass(frozen=True)
class MelodyVAEConfig:
    """Sizes of the 2-bar melody VAE. Defaults are `cat-mel_2bar_big` (Magenta's music_vae/configs.py)."""

    z_size: int = 512
    encoder_size: int = 2048  # units per direction of the single bidirectional layer
    decoder_sizes: tuple[int, ...] = (2048, 2048, 2048)
    num_classes: int = 90  # NO_EVENT, NOTE_OFF, MIDI pitches 21..108
    seq_len: int = 32  # 2 bars of 16th notes
    dtype: str = "float32"  # compute dtype of the LSTM matmuls: 'float32' or 'bfloat16'

    def __post_init__(self):
        if min(self.z_size, self.encoder_size, self.num_classes, self.seq_len) < 1 or not self.decoder_sizes:
            raise ValueError(f"MelodyVAEConfig needs positive sizes and at least one decoder layer: {self}")
        # gin passes lists; a tuple keeps the frozen config hashable (flax modules must be).
        object.__setattr__(self, "decoder_sizes", tuple(int(size) for size in self.decoder_sizes))


def _matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x @ kernel in the kernel's dtype (cast once, outside the scans), accumulated and returned in float32."""
    return jnp.matmul(x.astype(kernel.dtype), kernel, preferred_element_type=jnp.float32)


def lstm_step(kernel: jax.Array, bias: jax.Array, state: LSTMState, inputs: jax.Array) -> LSTMState:
    """One step of TF's LSTMBlockCell (no peepholes, no cell clipping).

    kernel [input + units, 4 * units] (float32, or bfloat16 for mixed precision), bias [4 * units],
    state (c, h) [batch, units], inputs [batch, input]; the gates and the new state are float32.
    """
    c, h = state
    gates = _matmul(jnp.concatenate([inputs, h], axis=-1), kernel) + bias  # [batch, 4 * units]
    return _gate_update(c, gates)


def _gate_update(c: jax.Array, gates: jax.Array) -> LSTMState:
    """The LSTM update from the gate pre-activations [batch, 4 * units] in TF's order (i, j, f, o)."""
    i, j, f, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f + FORGET_BIAS) * c + jax.nn.sigmoid(i) * jnp.tanh(j)
    return c, jax.nn.sigmoid(o) * jnp.tanh(c)


class KernelAndBias(nn.Module):
    """A dense layer's `kernel` [input_size, output_size] and `bias` [output_size], returned as arrays.

    The decoder's step runs inside `jax.lax.scan`, which may close over arrays but not call submodules.
    For an LSTM layer, input_size = layer input + units and output_size = 4 * units (TF's fused layout).
    """

    input_size: int
    output_size: int

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array]:
        # glorot_uniform and zeros: TF1's defaults for these variables.
        kernel = self.param("kernel", nn.initializers.glorot_uniform(), (self.input_size, self.output_size))
        bias = self.param("bias", nn.initializers.zeros, (self.output_size,))
        return kernel, bias


def _final_hidden(kernel: jax.Array, bias: jax.Array, events: jax.Array, num_classes: int, dtype: str) -> jax.Array:
    """Runs one LSTM direction over one-hot `events` [batch, steps] from a zero state; the final h.

    A one-hot input times the input rows of the kernel is a row lookup, done for all steps at once, so
    the scan only multiplies the recurrent part.
    """
    input_gates = kernel[:num_classes][events] + bias  # [batch, steps, 4 * units]
    recurrent_kernel = kernel[num_classes:].astype(dtype)  # [units, 4 * units]
    units = recurrent_kernel.shape[0]
    zeros = jnp.zeros((events.shape[0], units), kernel.dtype)

    def step(state, gates_from_input):
        c, h = state
        return _gate_update(c, gates_from_input + _matmul(h, recurrent_kernel)), None

    (_, h), _ = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(input_gates, 0, 1))
    return h  # [batch, units]


class BidirectionalLSTMEncoder(nn.Module):
    """events int32 [batch, steps] -> posterior (mu, sigma), each [batch, z_size]."""

    config: MelodyVAEConfig

    @nn.compact
    def __call__(self, events: jax.Array) -> tuple[jax.Array, jax.Array]:
        cfg = self.config
        lstm_shape = (cfg.num_classes + cfg.encoder_size, 4 * cfg.encoder_size)
        fw_kernel, fw_bias = KernelAndBias(*lstm_shape, name="fw")()
        bw_kernel, bw_bias = KernelAndBias(*lstm_shape, name="bw")()
        h_forward = _final_hidden(fw_kernel, fw_bias, events, cfg.num_classes, cfg.dtype)
        h_backward = _final_hidden(bw_kernel, bw_bias, events[:, ::-1], cfg.num_classes, cfg.dtype)
        hidden = jnp.concatenate([h_forward, h_backward], axis=-1)  # [batch, 2 * encoder_size]
        mu = nn.Dense(cfg.z_size, kernel_init=_SMALL_NORMAL, name="mu")(hidden)
        sigma = nn.softplus(nn.Dense(cfg.z_size, kernel_init=_SMALL_NORMAL, name="sigma")(hidden))
        return mu, sigma


class LSTMDecoder(nn.Module):
    """The autoregressive decoder: z [batch, z_size] -> logits and events over `seq_len` steps."""

    config: MelodyVAEConfig

    def setup(self):
        cfg = self.config
        self.z_to_initial_state = nn.Dense(
            2 * sum(cfg.decoder_sizes), kernel_init=_SMALL_NORMAL, name="z_to_initial_state")
        input_sizes = (cfg.num_classes + cfg.z_size, *cfg.decoder_sizes[:-1])
        self.cells = [
            KernelAndBias(size_in + units, 4 * units, name=f"cell_{layer}")
            for layer, (size_in, units) in enumerate(zip(input_sizes, cfg.decoder_sizes))]
        self.output_projection = KernelAndBias(cfg.decoder_sizes[-1], cfg.num_classes, name="output_projection")

    def initial_states(self, z: jax.Array) -> list[LSTMState]:
        """tanh(Dense(z)) split as Magenta flattens its states: c_0, h_0, c_1, h_1, ..."""
        flat = jnp.tanh(self.z_to_initial_state(z))  # [batch, 2 * sum(decoder_sizes)]
        split_points = []
        offset = 0
        for units in self.config.decoder_sizes:
            split_points += [offset + units, offset + 2 * units]
            offset += 2 * units
        parts = jnp.split(flat, split_points[:-1], axis=-1)
        return [(parts[2 * layer], parts[2 * layer + 1]) for layer in range(len(self.config.decoder_sizes))]

    def __call__(self, z: jax.Array, targets: jax.Array, use_own_output: jax.Array, rng: jax.Array | None,
                 temperature: float | jax.Array = 1.0) -> tuple[jax.Array, jax.Array]:
        """Unrolls the decoder over `seq_len` steps.

        Args:
          z: [batch, z_size].
          targets: int32 [batch, seq_len], the events fed back under teacher forcing.
          use_own_output: bool [batch, seq_len]; where True, the input after step t is the model's own
            event of step t instead of targets[:, t] (all False = teacher forcing, all True = free running,
            random = scheduled sampling).
          rng: key for sampling the model's own events; None = argmax.
          temperature: softmax temperature of those samples (ignored when rng is None).
        Returns:
          logits float32 [batch, seq_len, num_classes] and the model's own events int32 [batch, seq_len].
        """
        cfg = self.config
        weights = [cell() for cell in self.cells]
        output_kernel, output_bias = self.output_projection()
        first_kernel, first_bias = weights[0]
        # Layer 0's input is [previous one-hot, z]: split its kernel so z's share is computed once.
        prev_kernel = first_kernel[:cfg.num_classes]  # [num_classes, 4 * units_0]
        z_gates = z @ first_kernel[cfg.num_classes:cfg.num_classes + cfg.z_size] + first_bias
        recurrent_kernel_0 = first_kernel[cfg.num_classes + cfg.z_size:].astype(cfg.dtype)
        weights = [(kernel.astype(cfg.dtype), bias) for kernel, bias in weights]  # cast once, not per step
        batch = z.shape[0]
        step_keys = (jax.random.split(rng, cfg.seq_len) if rng is not None
                     else jnp.zeros((cfg.seq_len, 2), jnp.uint32))

        def step(carry, per_step):
            states, previous = carry  # previous: [batch, num_classes] one-hot (zeros at step 0)
            target, own_mask, key = per_step
            c0, h0 = states[0]
            new_states = [_gate_update(c0, previous @ prev_kernel + z_gates + _matmul(h0, recurrent_kernel_0))]
            for (kernel, bias), state in zip(weights[1:], states[1:]):
                new_states.append(lstm_step(kernel, bias, state, new_states[-1][1]))
            logits = new_states[-1][1] @ output_kernel + output_bias  # [batch, num_classes]
            if rng is None:
                own = jnp.argmax(logits, axis=-1)
            else:
                own = jax.random.categorical(key, logits / temperature, axis=-1)
            next_event = jnp.where(own_mask, own, target)
            next_input = jax.nn.one_hot(next_event, cfg.num_classes, dtype=z.dtype)
            return (new_states, next_input), (logits, own.astype(jnp.int32))

        initial = (self.initial_states(z), jnp.zeros((batch, cfg.num_classes), z.dtype))
        per_step = (targets.T, use_own_output.T, step_keys)
        _, (logits, events) = jax.lax.scan(step, initial, per_step)
        return jnp.swapaxes(logits, 0, 1), events.T


class MelodyVAE(nn.Module):
    """The whole VAE. `__call__` is the training pass; `encode` and `decode` are the public API:

        mu, sigma = model.apply({'params': p}, events, method=model.encode)
        events = model.apply({'params': p}, z, method=model.decode)            # argmax
        events = model.apply({'params': p}, z, rng, 0.5, method=model.decode)  # sampled
    """

    config: MelodyVAEConfig

    def setup(self):
        self.encoder = BidirectionalLSTMEncoder(self.config)
        self.decoder = LSTMDecoder(self.config)

    def encode(self, events: jax.Array) -> tuple[jax.Array, jax.Array]:
        """events int32 [batch, seq_len] class ids -> posterior (mu, sigma), each [batch, z_size]."""
        self._check_events(events)
        return self.encoder(events)

    def decode(self, z: jax.Array, rng: jax.Array | None = None, temperature: float = 0.0) -> jax.Array:
        """z [batch, z_size] -> events int32 [batch, seq_len]; temperature 0 (or rng None) = argmax."""
        if z.ndim != 2 or z.shape[-1] != self.config.z_size:
            raise ValueError(f"decode expects z [batch, {self.config.z_size}], got shape {z.shape}")
        if temperature != 0.0 and rng is None:
            raise ValueError("decode with a temperature > 0 samples and needs an rng")
        shape = (z.shape[0], self.config.seq_len)
        sample_rng = None if temperature == 0.0 else rng
        _, events = self.decoder(z, jnp.zeros(shape, jnp.int32), jnp.ones(shape, bool), sample_rng, temperature)
        return events

    def __call__(self, events: jax.Array, rng: jax.Array, sampling_probability: float | jax.Array = 0.0
                 ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """The training pass: encode, sample z, decode with scheduled sampling.

        Each step's input is, with `sampling_probability`, the model's own sample (temperature 1) of the
        previous step instead of the true previous event, as Magenta's ScheduledOutputTrainingHelper does.
        Returns logits [batch, seq_len, num_classes], mu, sigma and z (each [batch, z_size]).
        """
        mu, sigma = self.encode(events)
        rng_z, rng_mask, rng_sample = jax.random.split(rng, 3)
        z = mu + sigma * jax.random.normal(rng_z, mu.shape, mu.dtype)
        use_own_output = jax.random.uniform(rng_mask, events.shape) < sampling_probability
        logits, _ = self.decoder(z, events, use_own_output, rng_sample)
        return logits, mu, sigma, z

    def _check_events(self, events: jax.Array) -> None:
        if events.ndim != 2 or events.shape[1] != self.config.seq_len:
            raise ValueError(f"expected events [batch, {self.config.seq_len}], got shape {events.shape}")
        if not jnp.issubdtype(events.dtype, jnp.integer):
            raise ValueError(f"expected integer class ids, got dtype {events.dtype}")
