"""Counter-based generator: construction, determinism, distribution moments, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analogsim.kernels import make_key, normal, uniform
from analogsim.kernels.rng import sub_key

MASK = (1 << 64) - 1
GAMMA, M1, M2, C0 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, \
    0x6A09E667F3BCC909


def mix_np(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(M2)
    return z ^ (z >> np.uint64(31))


def u64_twin(key: int, counter: int, n: int) -> np.ndarray:
    """The documented construction: ``mix(s + (idx + 1)·γ)``, ``s = mix(key ^ mix(ctr·γ + c0))``."""
    c = np.array([(counter * GAMMA + C0) & MASK], dtype=np.uint64)
    s = mix_np(np.uint64(key) ^ mix_np(c))[0]
    idx = np.arange(1, n + 1, dtype=np.uint64)
    return mix_np(s + idx * np.uint64(GAMMA))


KEY = make_key(1234, 7)


def test_make_key_is_deterministic_and_separates_inputs():
    assert make_key(1, 2) == make_key(1, 2)
    keys = {make_key(s, t) for s in range(20) for t in range(5)}
    assert len(keys) == 100
    assert all(0 <= k <= MASK for k in keys)
    assert make_key(2**64 - 1, 0) != make_key(0, 0)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3", 2**64, None])
def test_make_key_rejects_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        make_key(seed, 0)


def test_sub_key_differs_from_key_and_by_tag():
    assert len({KEY, sub_key(KEY, 0), sub_key(KEY, 1), sub_key(KEY, 2)}) == 4


def test_uniform_matches_documented_construction():
    h = u64_twin(KEY, 5, 1000)
    expected = ((h >> np.uint64(12)).astype(np.float64) + 0.5) * 2.0**-52
    np.testing.assert_array_equal(uniform(KEY, 5, 1000), expected)


def test_uniform_is_a_pure_function_of_the_index():
    a = uniform(KEY, 3, 5000)
    np.testing.assert_array_equal(uniform(KEY, 3, 1234), a[:1234])
    assert not np.array_equal(uniform(KEY, 4, 5000), a)
    assert not np.array_equal(uniform(sub_key(KEY, 1), 3, 5000), a)
    assert uniform(KEY, 3, 0).shape == (0,)


def test_uniform_moments_and_range():
    n = 400_000
    u = uniform(KEY, 11, n)
    assert u.dtype == np.float64
    assert 0.0 < u.min() and u.max() < 1.0
    # 6 standard errors: deterministic for this seed, and far from a tight call.
    assert abs(u.mean() - 0.5) < 6 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 6 * math.sqrt(1 / 180 / n)
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_normal_is_a_pure_function_of_the_index():
    z = normal(KEY, 2, 5001)
    # Different chunkings and odd lengths (pairs share a draw) give the same numbers.
    np.testing.assert_array_equal(normal(KEY, 2, 1), z[:1])
    np.testing.assert_array_equal(normal(KEY, 2, 1025), z[:1025])
    np.testing.assert_array_equal(normal(KEY, 2, 3333), z[:3333])
    assert not np.array_equal(normal(KEY, 3, 5001), z)


def test_normal_moments_and_shape():
    n = 1_000_000
    z = normal(KEY, 9, n)
    se = 1 / math.sqrt(n)
    assert abs(z.mean()) < 6 * se
    assert abs(z.var() - 1.0) < 6 * math.sqrt(2) * se
    assert abs(stats.skew(z)) < 6 * math.sqrt(6) * se
    assert abs(stats.kurtosis(z)) < 6 * math.sqrt(24) * se
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_normal_tail_and_wedges_are_sampled():
    """Beyond the base layer (|z| > 3.654) the exact tail sampler is used: check its mass."""
    n = 2_000_000
    z = normal(KEY, 10, n)
    for c in (1.0, 2.0, 3.0, 3.654, 4.0):
        p = 2 * stats.norm.sf(c)
        frac = np.mean(np.abs(z) > c)
        assert abs(frac - p) < 6 * math.sqrt(p * (1 - p) / n) + 1e-7, c
    assert np.abs(z).max() > 4.5


@pytest.mark.parametrize(("args", "name"), [
    ((-1, 0, 3), "key"), ((2**64, 0, 3), "key"), ((1, -2, 3), "counter"),
    ((1, 0.5, 3), "counter"), ((1, 0, -1), "n"), ((1, 0, 2.0), "n"),
])
def test_array_helpers_validate(args, name):
    for fn in (uniform, normal):
        with pytest.raises(ValueError, match=name):
            fn(*args)


def test_normal_runs_equal_single_draws():
    """The vectorised run (fast path for all, rejected candidates finished afterwards) gives
    exactly the one-by-one ``rand_normal``, rejected candidates included."""
    from analogsim.kernels.rng import rand_normal

    z = normal(KEY, 12, 4000)
    one = np.array([rand_normal(np.uint64(KEY), np.uint64(12), np.uint64(i))
                    for i in range(4000)])
    np.testing.assert_array_equal(z, one)


def test_normal_pairs_equal_single_draws():
    """Normals of a scattered, unordered set of 64-bit draws (the dense ctoc rows draw only
    their pulsed cells') equal the one-by-one draws at ``2·pair`` and ``2·pair + 1``; 3000
    pairs hold ~50 rejected fast-path candidates, so the slow path is covered."""
    from analogsim.kernels.rng import fill_normal_pairs, rand_normal, stream_key

    pairs = np.random.default_rng(3).choice(10**6, 3000, replace=False).astype(np.int64)
    z = np.empty(2 * pairs.size)
    # The key as uint64: a Python int would be typed int64 (mixed arithmetic → float64).
    skey = np.uint64(stream_key(np.uint64(KEY), np.uint64(5)))
    fill_normal_pairs(skey, pairs, z,
                      np.empty(pairs.size, dtype=np.uint64))
    idx = np.stack([2 * pairs, 2 * pairs + 1], axis=1).ravel()
    one = np.array([rand_normal(np.uint64(KEY), np.uint64(5), np.uint64(i)) for i in idx])
    np.testing.assert_array_equal(z, one)


def test_normal_halves_are_the_first_of_each_pair():
    """One normal per draw (the cell-scope cycle noise): the even entries of the pairs."""
    from analogsim.kernels.rng import fill_normal_halves, fill_normal_pairs, stream_key

    pairs = np.random.default_rng(4).choice(10**6, 5000, replace=False).astype(np.int64)
    skey = np.uint64(stream_key(np.uint64(KEY), np.uint64(6)))
    both, half = np.empty(2 * pairs.size), np.empty(pairs.size)
    fill_normal_pairs(skey, pairs, both, np.empty(pairs.size, dtype=np.uint64))
    fill_normal_halves(skey, pairs, half, np.empty(pairs.size, dtype=np.uint64))
    np.testing.assert_array_equal(half, both[::2])
    assert np.isfinite(half).all()
