"""Training throughput (steps/s, examples/s) measured on the training steps alone, and model FLOP
utilization (MFU): FLOPs of one compiled step (XLA's cost analysis) x steps/s / the devices' peak."""
import time

# Peak dense matmul rate per device in TFLOP/s (vendor data sheets, bfloat16 without sparsity; V100:
# float16, it has no bfloat16), matched against jax's `device_kind` in this order (first match wins).
# MFU is reported against this peak whatever the compute dtype, the usual convention.
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H200", 989.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("V100", 125.0),
    ("TPU v6", 918.0),
    ("TPU v5p", 459.0),
    ("TPU v5", 197.0),  # v5e ("TPU v5 lite")
    ("TPU v4", 275.0),
    ("TPU v3", 123.0),
)


def peak_flops(device_kind: str, override_tflops: float = 0.0) -> float | None:
    """Peak FLOP/s of one device of `device_kind` (None if unknown); `override_tflops` > 0 wins."""
    if override_tflops > 0:
        return override_tflops * 1e12
    for name, tflops in PEAK_TFLOPS:
        if name.lower() in device_kind.lower():
            return tflops * 1e12
    return None


def compiled_flops(compiled) -> float | None:
    """FLOPs XLA counts for one call of a compiled function (`jax.jit(f).lower(...).compile()`), or None
    when the backend gives no cost analysis. For a sharded step this is the per-device program's count."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax: one dict per device program
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


class ThroughputMeter:
    """Rates over the steps since the last report. The run's first step (mostly compilation) is left
    out, and `restart()` after evaluation or checkpointing keeps that time out too.

    With `flops_per_step` (per device, from `compiled_flops`) and `peak_flops_per_device`, reports add
    `mfu`, the fraction of the devices' peak that the steps used.
    """

    def __init__(self, examples_per_step: int, flops_per_step: float | None = None,
                 peak_flops_per_device: float | None = None):
        self._examples_per_step = examples_per_step
        self._flops_per_step = flops_per_step
        self._peak = peak_flops_per_device
        self._clock_start: float | None = None  # set when the first step has finished
        self._steps = 0

    def step_done(self) -> None:
        if self._clock_start is None:
            self._clock_start = time.perf_counter()
        else:
            self._steps += 1

    def restart(self) -> None:
        """Forget the steps counted so far and start the clock now."""
        if self._clock_start is not None:
            self._clock_start, self._steps = time.perf_counter(), 0

    def report(self) -> dict[str, float]:
        """{'steps_per_sec', 'examples_per_sec'[, 'mfu']} since the last report (empty before any timed
        step); restarts."""
        if not self._steps:
            return {}
        steps_per_sec = self._steps / (time.perf_counter() - self._clock_start)
        self.restart()
        rates = {"steps_per_sec": steps_per_sec, "examples_per_sec": steps_per_sec * self._examples_per_step}
        if self._flops_per_step and self._peak:
            rates["mfu"] = self._flops_per_step * steps_per_sec / self._peak
        return rates
