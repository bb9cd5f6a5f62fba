import pytest

from routing.subsidy import price_trip, tier_index

TIERS = [{"min_km": 0, "max_km": 5, "per_trip": 0},
         {"min_km": 5, "max_km": 15, "per_trip": 10},
         {"min_km": 15, "max_km": None, "per_trip": 20}]


@pytest.mark.parametrize(("km", "tier", "amount"), [
    (0.0, 0, 0.0), (4.999, 0, 0.0), (5.0, 1, 10.0), (14.99, 1, 10.0), (15.0, 2, 20.0),
    (120.0, 2, 20.0)])
def test_a_boundary_distance_falls_into_the_tier_that_starts_there(km, tier, amount):
    assert price_trip(km, TIERS, 0.0, 600) == (tier, amount, False)


def test_the_monthly_cap_cuts_the_trip_that_reaches_it_and_zeroes_the_ones_after():
    assert price_trip(20.0, TIERS, 590.0, 600) == (2, 10.0, True)
    assert price_trip(20.0, TIERS, 600.0, 600) == (2, 0.0, True)
    assert price_trip(20.0, TIERS, 580.0, 600) == (2, 20.0, False)


def test_no_cap_means_the_full_tier_amount():
    assert price_trip(7.0, TIERS, 10_000.0, None) == (1, 10.0, False)


def test_a_distance_no_tier_covers_earns_nothing():
    assert tier_index(3.0, TIERS[1:]) is None
    assert price_trip(3.0, TIERS[1:], 0.0, 600) == (None, 0.0, False)


def test_a_negative_distance_is_refused():
    with pytest.raises(ValueError):
        price_trip(-1.0, TIERS, 0.0, 600)
