"""Noticing that the scheduler wants the machine back, so the loop can save and stop cleanly.

SLURM, Kubernetes and Cloud TPU send SIGTERM some time before they kill a job. With several
processes, jax's preemption service (started by `jax.distributed.initialize()`) catches it and agrees
on one step at which every process saves; in a single process a SIGTERM handler sets a flag.
"""
import signal
import threading

import jax
from jax.experimental import multihost_utils


class PreemptionWatch:
    """`reached(step)` is True at the step where this run should save a checkpoint and stop."""

    def __init__(self):
        self._signalled = False
        self._previous_handler = None
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        del signum, frame
        self._signalled = True

    def reached(self, step: int) -> bool:
        if jax.process_count() > 1:
            try:
                return multihost_utils.reached_preemption_sync_point(step)
            except RuntimeError:  # the preemption service is disabled (jax_enable_preemption_service)
                return False
        return self._signalled

    def close(self) -> None:
        """Puts the previous SIGTERM handler back."""
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None
