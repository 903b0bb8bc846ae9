"""How sure a top-1 is: its 95% interval on the test split, the interval of a difference of two, and whether the
model that produced it had stopped improving. The study's claims and `tflkit pick` decide only what these allow.

- **Interval of one top-1**: Wilson's score interval for a binomial proportion (k correct of n test images): it
  stays inside [0, 1] and keeps its coverage near 0 and 1, where the normal approximation does not. CIFAR-10's
  10,000 test images: 85% +/- 0.7 points; the demo's 2,000: +/- 1.6 points.
- **Seeds**: where a cell was trained with several seeds, its top-1 is their mean and its variance adds the seeds'
  spread (sample variance / number of seeds) to the test split's binomial variance.
- **A difference** of two top-1s is decided (one is higher) when the 95% interval of the difference excludes 0:
  normal approximation, variances added as for independent test samples. The models are scored on the same test
  images, so this is conservative (a paired test on per-image outcomes would be tighter; rows keep no per-image
  outcomes).
- **Convergence** from a run's validation curve: `still improving` when its last epoch raised the best validation
  top-1 by more than IMPROVING_POINTS; `early-stopped` when early stopping ended it (patience epochs without a
  better one); `converged` otherwise; `unknown` for a single epoch or no curve. A comparison is settled only when
  the model it puts below has stopped improving: one still climbing could overtake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
# One point of top-1 in the last epoch: more than a study's claims usually hinge on, so a model still gaining that
# much per epoch has not shown what its architecture reaches (the paper trains 50 epochs with early stopping).
IMPROVING_POINTS = 1.0
SETTLED = ("converged", "early-stopped")


def wilson_interval(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95% interval of a proportion p measured on n trials (Wilson's score interval)."""
    if n <= 0:
        raise ValueError("an interval needs at least one trial")
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def top1_variance(p: float, n: int, seed_values: list[float] | None = None) -> float:
    """Variance of a (mean) top-1: binomial on n test images, plus the seeds' spread of the mean."""
    variance = p * (1 - p) / n
    if seed_values and len(seed_values) > 1:
        mean = sum(seed_values) / len(seed_values)
        spread = sum((v - mean) ** 2 for v in seed_values) / (len(seed_values) - 1)
        variance += spread / len(seed_values)
    return variance


def mean_interval(values: list[float], n: int, z: float = Z95) -> tuple[float, float]:
    """95% interval of the mean top-1 of several seeds on the same n test images (normal approximation)."""
    mean = sum(values) / len(values)
    half = z * math.sqrt(top1_variance(mean, n, values))
    return max(0.0, mean - half), min(1.0, mean + half)


def difference_interval(a: float, var_a: float, b: float, var_b: float, z: float = Z95) -> tuple[float, float]:
    """95% interval of a - b."""
    half = z * math.sqrt(var_a + var_b)
    return a - b - half, a - b + half


def convergence(curve: list[float] | None, stopped: bool = False) -> tuple[str, float | None]:
    """(status, gain in points of the best value in the last epoch) of a validation top-1 curve (fractions)."""
    if stopped:
        return "early-stopped", 0.0
    if not curve or len(curve) < 2:
        return "unknown", None
    gain = 100 * (max(curve) - max(curve[:-1]))
    return ("still improving" if gain > IMPROVING_POINTS else "converged"), gain


@dataclass(frozen=True)
class Measured:
    """A top-1 with what its uncertainty needs: test images, per-seed values, the training's convergence."""

    name: str
    top1: float
    images: int | None
    convergence: str | None = None  # None: not recorded
    last_gain: float | None = None
    epochs: int | None = None
    seeds: tuple = ()

    @property
    def variance(self) -> float | None:
        return top1_variance(self.top1, self.images, list(self.seeds)) if self.images else None

    def why_unsettled(self) -> str | None:
        """Why this model could still rise (None when it has stopped improving)."""
        if self.convergence in SETTLED:
            return None
        if self.convergence == "still improving":
            at = f" at epoch {self.epochs}" if self.epochs else ""
            return f"{self.name} still improving{at}: {self.last_gain:+.1f} points in its last epoch"
        if self.convergence == "unknown":
            return f"{self.name}'s convergence is unknown (one epoch)"
        return f"{self.name}'s convergence was not recorded"


def compare(a: Measured, b: Measured) -> tuple[str, str | None]:
    """('>', None) or ('<', None) when the difference is decided and the lower model stopped improving; otherwise
    ('~', why): within the interval, no interval (test image count unknown), or the lower one still climbing."""
    if a.variance is None or b.variance is None:
        unknown = a.name if a.variance is None else b.name
        return "~", f"{unknown} has no test-image count, so no interval"
    lo, hi = difference_interval(a.top1, a.variance, b.top1, b.variance)
    if lo <= 0 <= hi:
        return "~", (f"{a.name} {100 * a.top1:.2f}% and {b.name} {100 * b.top1:.2f}% differ by less than the 95% "
                     f"interval of their difference ({100 * (a.top1 - b.top1):+.2f}, interval "
                     f"{100 * lo:+.2f} to {100 * hi:+.2f} points)")
    order, lower = (">", b) if lo > 0 else ("<", a)
    why = lower.why_unsettled()
    return (order, None) if why is None else ("~", why)
