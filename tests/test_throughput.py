"""MFU: the peak table, XLA's FLOP count of a compiled step, and the meter's report."""
import time

import jax
import jax.numpy as jnp
import pytest

from smdiff.training import throughput


def test_peak_table_matches_jax_device_kinds_and_the_override_wins():
    assert throughput.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert throughput.peak_flops("NVIDIA H100 PCIe") == 756e12
    assert throughput.peak_flops("NVIDIA H200") == 989e12
    assert throughput.peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert throughput.peak_flops("TPU v5 lite") == 197e12
    assert throughput.peak_flops("TPU v5p") == 459e12
    assert throughput.peak_flops("TPU v4") == 275e12
    assert throughput.peak_flops("cpu") is None
    assert throughput.peak_flops("cpu", override_tflops=0.5) == 0.5e12


def test_compiled_flops_counts_a_matmul():
    a = jnp.ones((64, 128))
    b = jnp.ones((128, 32))
    flops = throughput.compiled_flops(jax.jit(jnp.matmul).lower(a, b).compile())
    assert flops == pytest.approx(2 * 64 * 128 * 32, rel=0.01)


def test_meter_reports_mfu_from_flops_steps_and_peak():
    meter = throughput.ThroughputMeter(examples_per_step=8, flops_per_step=1e9, peak_flops_per_device=1e12)
    meter.step_done()  # the first step (compilation) is not timed
    for _ in range(4):
        time.sleep(0.01)
        meter.step_done()
    report = meter.report()
    assert report["examples_per_sec"] == pytest.approx(8 * report["steps_per_sec"])
    assert report["mfu"] == pytest.approx(1e9 * report["steps_per_sec"] / 1e12)
    assert "mfu" not in throughput.ThroughputMeter(8).report()
