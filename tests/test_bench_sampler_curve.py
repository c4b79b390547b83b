"""The sampler-curve benchmark's verdict: from how few steps on a curve stays within the 1000-step intervals."""
from benchmarks import bench_sampler_curve as curve


def _report(pitch_c: float) -> dict:
    """A report whose pitch C is `pitch_c` with the interval +-0.02, every other cell 0.5 (0.45-0.55)."""
    table = {"pitch": (pitch_c, 0.5), "duration": (0.5, 0.5)}
    intervals = {"pitch": {"C": (pitch_c - 0.02, pitch_c + 0.02), "Var": (0.45, 0.55)},
                 "duration": {"C": (0.45, 0.55), "Var": (0.45, 0.55)}}
    return {"table": table, "interval_pooled": intervals}


def _point(curve_name: str, steps: int, pitch_c: float) -> tuple:
    return (curve_name, "ddim", steps, 0.0), {mode: _report(pitch_c) for mode in curve.MODES}, 1.0


def test_fewest_steps_is_where_the_curve_last_enters_the_reference_intervals():
    results = [
        _point("DDIM eta=0", 10, 0.80), _point("DDIM eta=0", 50, 0.71), _point("DDIM eta=0", 1000, 0.70),
        # inside at 10 and 1000 but out at 50: the curve stays within only from 1000 on
        _point("DDIM eta=1", 10, 0.70), _point("DDIM eta=1", 50, 0.60), _point("DDIM eta=1", 1000, 0.69),
        _point("far", 10, 0.5), _point("far", 1000, 0.5),
        (("ancestral DDPM", "ddpm", 1000, 1.0), {mode: _report(0.70) for mode in curve.MODES}, 1.0),
    ]
    assert curve.fewest_steps_within(results) == {"DDIM eta=0": 50, "DDIM eta=1": 1000, "far": None}
    assert curve.within(_report(0.715), _report(0.70)) and not curve.within(_report(0.73), _report(0.70))
