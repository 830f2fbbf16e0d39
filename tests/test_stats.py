"""The statistics every table reports: seed means with sample std (none for one seed), paired differences with
Student-t intervals, verdicts and the seeds 80% power needs."""

import math

import pytest

from ablab.stats import paired_delta, power, seed_stats, seeds_needed, signed


def test_one_seed_has_no_std_and_no_interval():
    one = seed_stats([49.3])
    assert one.std is None and one.n == 1 and str(one) == "49.30"
    delta = paired_delta({0: 50.0}, {0: 49.0})
    assert (delta.mean, delta.n, delta.lo, delta.verdict, str(delta)) == (1.0, 1, None, "n = 1", "+1.00")


def test_paired_difference_uses_common_seeds_and_students_t():
    step = {0: 52.0, 1: 53.0, 2: 54.0, 7: 99.0}  # seed 7 has no partner: left out
    parent = {0: 50.0, 1: 50.0, 2: 50.0}
    delta = paired_delta(step, parent)  # differences 2, 3, 4: mean 3, sd 1, t(0.975, 2) = 4.3027
    assert delta.n == 3 and delta.mean == 3.0 and delta.sd == 1.0
    assert delta.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)  # 2.48: [+0.52, +5.48]
    assert delta.verdict == "better" and str(delta) == "+3.00 [+0.52, +5.48]"
    assert paired_delta({0: 51.0, 1: 52.0, 2: 53.0}, parent).verdict == "not resolved"  # [-0.48, +4.48]
    assert paired_delta({0: 1.0, 1: 3.0}, {0: 2.0, 1: 2.0}).verdict == "not resolved"
    assert paired_delta({0: 40.0, 1: 41.0, 2: 40.5}, {0: 50.0, 1: 50.5, 2: 51.0}).verdict == "worse"
    assert paired_delta({0: 1.0}, {1: 2.0}) is None


def test_seeds_needed_matches_the_paired_t_test_tables():
    # G*Power, paired t test, two-sided alpha 0.05, power 0.80: dz = 1.0 needs 10 pairs, dz = 0.5 needs 34
    assert seeds_needed(1.0, 1.0) == 10 and seeds_needed(-2.5, 5.0) == 34
    assert power(1.0, 1.0, 10) >= 0.8 > power(1.0, 1.0, 9)
    assert seeds_needed(0.0, 1.0) > 1000 and seeds_needed(1.0, 0.0) == 2


def test_signed_uses_a_minus_sign():
    assert signed(-0.4) == "\u22120.40" and signed(1.2) == "+1.20" and signed(-0.0001) == "0.00"
