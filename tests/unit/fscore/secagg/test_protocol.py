"""Secure aggregation's parts: the sum unmasks with 0, 1 and n - t dropouts, equal to the plain sum within
the fixed-point error; one masked update is independent of the update; too few shares unmask nothing."""

from __future__ import annotations

import numpy as np
import pytest

from fscore.secagg import FixedPoint, SecAggError, SecAggParticipant, SecAggServer, shamir
from fscore.secagg.field import P, mask


def seeded(seed: int):
    rng = np.random.default_rng(seed)
    return rng.bytes


def course(n: int, threshold: int, seed: int = 0):
    encoding = FixedPoint(bound=8.0, precision=24, participants=n)
    people = [SecAggParticipant(f"p{i:02d}", encoding, threshold, seeded(seed * 1000 + i)) for i in range(n)]
    roster = [p.advertise() for p in people]
    sealed = {p.address: p.share(roster) for p in people}
    for p in people:
        p.receive({u: boxes[p.address] for u, boxes in sealed.items() if u != p.address})
    return encoding, people, roster


def run_round(n: int, threshold: int, *, drop_before_input: int = 0, drop_after_input: int = 0, seed: int = 0):
    encoding, people, roster = course(n, threshold, seed)
    rng = np.random.default_rng(seed)
    updates = {p.address: rng.uniform(-1, 1, 50) for p in people}
    sharers = [p.address for p in people]
    senders = people[drop_before_input:]  # the first ones dropped before sending their masked input
    masked = {p.address: p.masked_input(updates[p.address], sharers) for p in senders}
    alive = senders[drop_after_input:]  # then some dropped after sending it
    survivors, dropped = sorted(masked), sorted(set(sharers) - set(masked))
    reveals = {p.address: p.reveal(survivors, dropped) for p in alive}
    total = SecAggServer(encoding, threshold).unmask(roster, sharers, masked, reveals)
    plain = sum(updates[u] for u in survivors)
    return total, plain, encoding


@pytest.mark.parametrize(("before", "after"), [(0, 0), (1, 0), (0, 1), (2, 1), (0, 3)])
def test_the_unmasked_sum_equals_the_plain_sum_within_the_fixed_point_error(before, after):
    n, threshold = 7, 4  # up to n - threshold = 3 may drop
    total, plain, encoding = run_round(n, threshold, drop_before_input=before, drop_after_input=after)
    assert np.max(np.abs(total - plain)) <= n * encoding.resolution + 1e-12


def test_more_dropouts_than_the_threshold_allows_unmask_nothing():
    with pytest.raises(SecAggError, match="unmasking needs 4"):
        run_round(7, 4, drop_after_input=4)


def test_a_masked_update_is_independent_of_the_update():
    """Over many rounds, the masked first element is uncorrelated with the real one, and uniform over the field."""
    real, masked = [], []
    for seed in range(300):
        _, people, _ = course(3, 2, seed)
        x = np.random.default_rng(10_000 + seed).uniform(-1, 1, 4)
        y = people[0].masked_input(x, [p.address for p in people])
        real.append(x[0])
        masked.append(float(y[0]) / P)
    assert abs(np.corrcoef(real, masked)[0, 1]) < 0.15
    assert 0.4 < np.mean(masked) < 0.6 and 0.05 < np.var(masked) < 0.12  # uniform on [0, 1): mean 1/2, var 1/12


def test_a_participant_is_never_asked_for_both_secrets_of_one_participant():
    _, people, _ = course(3, 2)
    with pytest.raises(SecAggError, match="both secrets"):
        people[0].reveal(["p01"], ["p01"])


def test_a_share_altered_in_transit_does_not_open():
    encoding = FixedPoint(bound=1.0, precision=16, participants=2)
    a, b = (SecAggParticipant(f"p{i}", encoding, 2, seeded(i)) for i in range(2))
    roster = [a.advertise(), b.advertise()]
    sealed = a.share(roster)["p1"]
    b.share(roster)
    with pytest.raises(SecAggError, match="does not open"):
        b.receive({"p0": sealed[:-1] + bytes([sealed[-1] ^ 1])})


def test_shamir_recovers_from_any_threshold_shares_and_not_from_fewer():
    secret = bytes(range(32))
    shares = shamir.split(secret, [1, 2, 3, 4, 5], 3, seeded(1))
    assert shamir.combine({x: shares[x] for x in (2, 4, 5)}, 3, 32) == secret
    with pytest.raises(ValueError, match="do not combine"):  # too few shares, taken as enough: garbage
        shamir.combine({x: shares[x] for x in (1, 2)}, 2, 32)
    with pytest.raises(ValueError, match="cannot recover"):
        shamir.combine({1: shares[1], 3: shares[3]}, 3, 32)


def test_fixed_point_refuses_a_course_that_could_overflow_the_field_and_masks_are_uniform():
    with pytest.raises(ValueError, match="overflow the field"):
        FixedPoint(bound=1e6, precision=40, participants=1000)
    m = mask(bytes(32), 100_000).astype(np.float64) / P
    assert m.max() < 1 and abs(m.mean() - 0.5) < 0.01
    assert not np.array_equal(mask(bytes(32), 10), mask(bytes(31) + b"\x01", 10))
