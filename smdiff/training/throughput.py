"""Training throughput (steps/s, examples/s) measured on the training steps alone."""
import time


class ThroughputMeter:
    """Rates over the steps since the last report. The run's first step (mostly compilation) is left
    out, and `restart()` after evaluation or checkpointing keeps that time out too."""

    def __init__(self, examples_per_step: int):
        self._examples_per_step = examples_per_step
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
        """{'steps_per_sec', 'examples_per_sec'} since the last report (empty before any timed step); restarts."""
        if not self._steps:
            return {}
        steps_per_sec = self._steps / (time.perf_counter() - self._clock_start)
        self.restart()
        return {"steps_per_sec": steps_per_sec, "examples_per_sec": steps_per_sec * self._examples_per_step}
