"""tflkit.core.uncertainty: intervals, seeds, convergence and the comparison rule, worked out by hand."""

from __future__ import annotations

import pytest

from tflkit.core.uncertainty import Measured, compare, convergence, top1_variance, wilson_interval


def test_wilson_interval_matches_the_formula_and_stays_inside_0_1():
    lo, hi = wilson_interval(0.85, 10_000)
    assert lo == pytest.approx(0.84285, abs=1e-4) and hi == pytest.approx(0.85686, abs=1e-4)
    assert wilson_interval(0.0, 50)[0] == pytest.approx(0.0, abs=1e-12) and 0 < wilson_interval(0.0, 50)[1] < 0.08
    assert wilson_interval(1.0, 50)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(0.5, 0)


def test_seeds_add_their_spread_of_the_mean():
    binomial = 0.8 * 0.2 / 1000
    assert top1_variance(0.8, 1000) == pytest.approx(binomial)
    # seeds 0.78, 0.80, 0.82: sample variance 4e-4, of the mean 4e-4 / 3
    assert top1_variance(0.8, 1000, [0.78, 0.80, 0.82]) == pytest.approx(binomial + 4e-4 / 3)


def test_convergence_from_the_last_epochs_gain_in_best_validation_top1():
    assert convergence([0.5, 0.6, 0.65]) == ("still improving", pytest.approx(5.0))
    assert convergence([0.5, 0.65, 0.655])[0] == "converged"  # +0.5 points
    assert convergence([0.5, 0.65, 0.60]) == ("converged", 0.0)  # the best was earlier
    assert convergence([0.5, 0.6], stopped=True) == ("early-stopped", 0.0)
    assert convergence([0.5]) == ("unknown", None) and convergence(None) == ("unknown", None)


def test_compare_decides_only_beyond_the_interval_and_with_the_lower_model_settled():
    a = Measured("a", 0.80, 10_000, "converged")
    b = Measured("b", 0.75, 10_000, "converged")
    assert compare(a, b) == (">", None) and compare(b, a) == ("<", None)
    close = Measured("c", 0.795, 10_000, "converged")
    order, why = compare(a, close)
    assert order == "~" and "differ by less than the 95% interval" in why
    climbing = Measured("b", 0.75, 10_000, "still improving", last_gain=2.5, epochs=4)
    assert compare(a, climbing) == ("~", "b still improving at epoch 4: +2.5 points in its last epoch")
    assert compare(climbing, a)[0] == "~"  # below, still climbing: it could overtake
    ahead = Measured("h", 0.85, 10_000, "still improving", last_gain=2.5, epochs=4)
    assert compare(ahead, a) == (">", None)  # above and climbing: it only gets further ahead
    assert compare(a, Measured("n", 0.5, None, "converged"))[1] == "n has no test-image count, so no interval"
