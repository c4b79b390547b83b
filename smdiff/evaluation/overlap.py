"""The framewise overlapping-area (OA) metric of Mittal et al. 2021, section 4.4 (REFERENCE.md section 1).

A melody is an int array of notes [n, 3] = (start_step, end_step, pitch) on a 16th-note grid. A 4-bar frame
slides over it with a 2-bar hop; in each frame one Gaussian is fitted to the pitches (MIDI numbers) of its
notes and one to their durations (in steps). Adjacent frames are compared by the overlapping area of their
Gaussians, the integral of min(p1, p2), computed in closed form from the intersection points and the
Gaussian CDFs (the paper's eq. 9 prints this with sigma^2 where sigma belongs and without the factors 1/2;
`overlapping_area` is the exact integral, tested against numerical integration).

Choices where the paper is silent (they follow the peer implementation of Plasser et al. 2023, so its
calibration point stays comparable):
- a note belongs to the frame(s) containing its onset; its duration is its full length in steps, not
  truncated at the frame edge;
- a frame's Gaussian uses the population standard deviation plus `STD_FLOOR` (1e-6), so a frame of equal
  values (zero variance) is a near-point Gaussian: two equal constant frames overlap fully (OA 1), two
  different ones not at all (OA 0);
- an empty frame (no onsets) is the near-point Gaussian N(`EMPTY_FRAME_MEAN`=0, STD_FLOOR^2): two empty
  frames overlap fully, an empty frame and a non-empty one have OA ~0, so silence costs consistency
  instead of dropping out of the average. `frame_statistics` reports which frames were empty.

Aggregation over a set of melodies has two readings (REFERENCE.md): 'pooled' takes the mean and variance
of all adjacent-frame OAs of all melodies (the paper's wording, used for smdiff's Table 1); 'per_sequence'
takes each melody's mean OA, then the mean and variance of those (Plasser et al.). Variances are
population variances (ddof=0).
"""
from typing import Literal, Sequence

import numpy as np
from scipy import special

STD_FLOOR = 1e-6
EMPTY_FRAME_MEAN = 0.0
_EQUAL_SD_RTOL = 1e-9

Reading = Literal["pooled", "per_sequence"]


def _normal_cdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return special.ndtr((x - mean) / std)


def overlapping_area(mu1, sd1, mu2, sd2) -> np.ndarray:
    """Integral of min(N(x; mu1, sd1^2), N(x; mu2, sd2^2)) dx, elementwise over broadcast arrays.

    The densities cross where log p1 = log p2, a quadratic A x^2 + B x + C = 0. With equal standard
    deviations there is one crossing c (the midpoint) and OA = P_upper(x < c) + P_lower(x > c), where
    "upper" is the Gaussian with the larger mean. With unequal ones there are always two crossings
    r1 < r2; the narrower density is the smaller one outside [r1, r2] and the wider one inside.
    Returns float64 values in [0, 1].
    """
    mu1, sd1, mu2, sd2 = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (mu1, sd1, mu2, sd2)))
    if np.any(sd1 <= 0) or np.any(sd2 <= 0):
        raise ValueError("overlapping_area needs positive standard deviations")
    result = np.empty(mu1.shape, dtype=np.float64)

    # Spreads equal up to rounding (two frames of the same notes summed in another order) count as equal:
    # the quadratic's leading coefficient would vanish in floating point.
    equal_sd = np.abs(sd1 - sd2) <= _EQUAL_SD_RTOL * np.maximum(sd1, sd2)
    # One crossing at the midpoint; identical Gaussians (equal means too) overlap fully.
    low_mu, high_mu = np.minimum(mu1, mu2), np.maximum(mu1, mu2)
    midpoint, sd = 0.5 * (low_mu + high_mu), 0.5 * (sd1 + sd2)
    one_crossing = _normal_cdf(midpoint, high_mu, sd) + 1.0 - _normal_cdf(midpoint, low_mu, sd)
    result[equal_sd] = one_crossing[equal_sd]

    # Two crossings: order so that (mu_n, sd_n) is the narrower density, (mu_w, sd_w) the wider.
    first_narrower = sd1 < sd2
    mu_n, sd_n = np.where(first_narrower, mu1, mu2), np.where(first_narrower, sd1, sd2)
    mu_w, sd_w = np.where(first_narrower, mu2, mu1), np.where(first_narrower, sd2, sd1)
    # In y = x - mu_n (which keeps the coefficients well conditioned for near-point Gaussians),
    # log p_w - log p_n = a y^2 + b y + c with a > 0 and c < 0, so there are always two real roots.
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = mu_w - mu_n
        a = 0.5 / sd_n**2 - 0.5 / sd_w**2
        b = distance / sd_w**2
        c = -0.5 * distance**2 / sd_w**2 + np.log(sd_n / sd_w)
        root_disc = np.sqrt(b * b - 4.0 * a * c)
        # Numerically stable roots: q = -(b + sign(b) sqrt(disc)) / 2, roots q/a and c/q (q != 0 as c < 0).
        q = -0.5 * (b + np.where(b >= 0, 1.0, -1.0) * root_disc)
        root_a, root_b = mu_n + q / a, mu_n + c / q
    r1, r2 = np.minimum(root_a, root_b), np.maximum(root_a, root_b)
    two_crossings = (
        _normal_cdf(r1, mu_n, sd_n)
        + (_normal_cdf(r2, mu_w, sd_w) - _normal_cdf(r1, mu_w, sd_w))
        + (1.0 - _normal_cdf(r2, mu_n, sd_n))
    )
    result[~equal_sd] = two_crossings[~equal_sd]
    return np.clip(result, 0.0, 1.0)


def frame_statistics(
    notes: np.ndarray,
    num_steps: int | None = None,
    steps_per_bar: int = 16,
    frame_bars: int = 4,
    hop_bars: int = 2,
) -> dict[str, np.ndarray]:
    """Per-frame Gaussian fits of one melody.

    Args:
      notes: int [n, 3] of (start_step, end_step, pitch), end > start.
      num_steps: length of the melody in steps (64 bars = 1024); default: the last note's end rounded up to
        a whole bar. Pass it for generated melodies so trailing silence counts.
    Returns:
      dict of float64 [F] arrays `pitch_mean`, `pitch_std`, `duration_mean`, `duration_std` (std floored,
      empty frames as the near-point Gaussian) and int [F] `num_notes`, with
      F = (bars - frame_bars) // hop_bars + 1 frames (0 if the melody is shorter than one frame).
    """
    notes = np.asarray(notes).reshape(-1, 3).astype(np.int64)
    if np.any(notes[:, 1] <= notes[:, 0]):
        raise ValueError("every note needs end_step > start_step")
    if num_steps is None:
        last_end = int(notes[:, 1].max()) if len(notes) else 0
        num_steps = -(-last_end // steps_per_bar) * steps_per_bar
    num_bars = num_steps // steps_per_bar
    num_frames = max(0, (num_bars - frame_bars) // hop_bars + 1)

    frame_starts = np.arange(num_frames) * hop_bars * steps_per_bar  # [F]
    onsets = notes[:, 0]
    # in_frame[f, i]: note i starts inside frame f.  [F, n]
    in_frame = (onsets[None, :] >= frame_starts[:, None]) & (onsets[None, :] < frame_starts[:, None] + frame_bars * steps_per_bar)
    counts = in_frame.sum(axis=1)
    stats = {"num_notes": counts}
    for name, values in (("pitch", notes[:, 2]), ("duration", notes[:, 1] - notes[:, 0])):
        values = values.astype(np.float64)[None, :]  # [1, n]
        safe_counts = np.maximum(counts, 1)
        mean = np.where(in_frame, values, 0.0).sum(axis=1) / safe_counts
        variance = np.where(in_frame, (values - mean[:, None]) ** 2, 0.0).sum(axis=1) / safe_counts
        stats[f"{name}_mean"] = np.where(counts > 0, mean, EMPTY_FRAME_MEAN)
        stats[f"{name}_std"] = np.sqrt(variance) + STD_FLOOR
    return stats


def sequence_overlaps(
    notes: np.ndarray,
    steps_per_bar: int = 16,
    frame_bars: int = 4,
    hop_bars: int = 2,
    num_steps: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(pitch_oa [F-1], duration_oa [F-1]): OA of each pair of adjacent frames of one melody.

    notes: int [n, 3] of (start_step, end_step, pitch); num_steps as in `frame_statistics`.
    """
    return frame_pair_overlaps(frame_statistics(notes, num_steps, steps_per_bar, frame_bars, hop_bars))


def frame_pair_overlaps(stats: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(pitch_oa [F-1], duration_oa [F-1]) from one melody's `frame_statistics`."""
    overlaps = []
    for name in ("pitch", "duration"):
        mean, std = stats[f"{name}_mean"], stats[f"{name}_std"]
        overlaps.append(overlapping_area(mean[:-1], std[:-1], mean[1:], std[1:]))
    return overlaps[0], overlaps[1]


def aligned_frame_overlaps(stats_a: dict[str, np.ndarray], stats_b: dict[str, np.ndarray]
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(pitch_oa [F], duration_oa [F]): OA of frame f of one melody with frame f of another of the same
    length (a variation and its source), from their `frame_statistics`."""
    if len(stats_a["num_notes"]) != len(stats_b["num_notes"]):
        raise ValueError(f"the melodies have {len(stats_a['num_notes'])} and {len(stats_b['num_notes'])} frames")
    return tuple(overlapping_area(stats_a[f"{name}_mean"], stats_a[f"{name}_std"], stats_b[f"{name}_mean"],
                                  stats_b[f"{name}_std"]) for name in ("pitch", "duration"))


def empty_frame_pairs(num_notes: np.ndarray) -> dict[str, int]:
    """How many adjacent-frame pairs of one melody involve an empty frame, from its frames' note counts [F].

    Returns {'pairs': F-1, 'one_empty': pairs of an empty and a non-empty frame (OA ~0),
    'both_empty': pairs of two empty frames (OA 1)}.
    """
    empty = np.asarray(num_notes) == 0
    one, both = empty[:-1] != empty[1:], empty[:-1] & empty[1:]
    return {"pairs": int(max(len(empty) - 1, 0)), "one_empty": int(one.sum()), "both_empty": int(both.sum())}


def oa_statistics(oas: Sequence[np.ndarray], reading: Reading = "pooled") -> tuple[float, float]:
    """(mean, variance) of a set of melodies' adjacent-frame OAs (one 1-D array per melody).

    'pooled': over all OAs of all melodies; 'per_sequence': over the melodies' mean OAs. A melody with no
    frame pair (shorter than frame + hop) has no OA and is left out; an empty set raises ValueError.
    """
    oas = [np.asarray(o, dtype=np.float64).reshape(-1) for o in oas]
    oas = [o for o in oas if o.size]
    if not oas:
        raise ValueError("no adjacent-frame overlaps: every melody is shorter than two frames")
    if not all(np.isfinite(o).all() for o in oas):
        raise ValueError("non-finite overlapping area: a frame's Gaussian is malformed")
    if reading == "pooled":
        values = np.concatenate(oas)
    elif reading == "per_sequence":
        values = np.array([o.mean() for o in oas])
    else:
        raise ValueError(f"reading must be 'pooled' or 'per_sequence', got {reading!r}")
    return float(values.mean()), float(values.var())


def resampled_oa_statistics(
    oas: Sequence[np.ndarray], draws: np.ndarray, reading: Reading = "pooled"
) -> tuple[np.ndarray, np.ndarray]:
    """(mean [R], variance [R]) of `oa_statistics` for R resampled sets of the same melodies, at once.

    draws: int [R, n], how many times each of the n melodies is in resampled set r (a bootstrap draws n
    with replacement). Melodies without an OA are left out, as in `oa_statistics`; a resampled set made
    only of them gets NaN.
    """
    oas = [np.asarray(o, dtype=np.float64).reshape(-1) for o in oas]
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 2 or draws.shape[1] != len(oas):
        raise ValueError(f"draws must be [R, {len(oas)}], got {draws.shape}")
    sizes = np.array([o.size for o in oas], dtype=np.float64)  # [n]
    if reading == "pooled":  # every OA of a drawn melody counts once per draw
        weights, totals, squares = sizes, [o.sum() for o in oas], [(o ** 2).sum() for o in oas]
    elif reading == "per_sequence":  # each drawn melody's mean OA counts once per draw
        means = [o.mean() if o.size else 0.0 for o in oas]
        weights, totals, squares = (sizes > 0).astype(np.float64), means, np.square(means)
    else:
        raise ValueError(f"reading must be 'pooled' or 'per_sequence', got {reading!r}")
    count = draws @ weights  # [R]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = draws @ np.asarray(totals) / count
        variance = draws @ np.asarray(squares) / count - mean ** 2
    return mean, np.maximum(variance, 0.0)


def relative_similarity(value: float | np.ndarray, ground_truth: float) -> float | np.ndarray:
    """Paper eq. 10: max(0, 1 - |value - ground_truth| / ground_truth); elementwise for an array of values."""
    if ground_truth <= 0:
        raise ValueError(f"the ground-truth statistic must be positive, got {ground_truth}")
    similarity = np.maximum(0.0, 1.0 - np.abs(value - ground_truth) / ground_truth)
    return float(similarity) if np.ndim(similarity) == 0 else similarity


def similarity_interval(interval: tuple[float, float], ground_truth: float) -> tuple[float, float]:
    """(low, high) of eq. 10's similarity over a statistic's interval (low, high): its image under
    `relative_similarity`, which folds at the ground truth, so an interval holding it reaches 1."""
    low, high = interval
    ends = [relative_similarity(value, ground_truth) for value in (low, high)]
    return min(ends), (1.0 if low <= ground_truth <= high else max(ends))


def consistency_variance(
    sample_oas: Sequence[np.ndarray], train_oas: Sequence[np.ndarray], reading: Reading = "pooled",
    draws: np.ndarray | None = None,
) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """(Consistency, Variance) of the samples' OAs relative to the training set's (paper eq. 10).

    sample_oas, train_oas: one 1-D OA array per melody (pitch or duration, not mixed). With `draws` (int
    [R, n], see `resampled_oa_statistics`) each is an array [R] over resampled sets of the samples; the
    training statistics stay the fixed reference.
    """
    sample_mean, sample_var = (oa_statistics(sample_oas, reading) if draws is None
                               else resampled_oa_statistics(sample_oas, draws, reading))
    train_mean, train_var = oa_statistics(train_oas, reading)
    return relative_similarity(sample_mean, train_mean), relative_similarity(sample_var, train_var)
