"""The synthetic climate data carries the statistics it was made with."""

import numpy as np
import pytest
from climate_data import Recipe, expected_temperature, make_dataset, monthly_climatology_numpy

RECIPE = Recipe(years=3, nlat=12, nlon=24, chunk_days=200)


@pytest.fixture(scope="module")
def data():
    return make_dataset(RECIPE).compute()


def test_shape_coordinates_and_units(data):
    assert data.temperature.shape == (1096, 12, 24)
    assert data.temperature.attrs["units"] == "degC" and data.precipitation.attrs["units"] == "mm/day"
    assert float(data.lat.min()) > -90 and float(data.lat.max()) < 90 and float(data.lon.max()) < 360


def test_monthly_climatology_matches_the_recipe_within_the_noise(data):
    computed = data.temperature.groupby("time.month").mean()
    truth = expected_temperature(RECIPE).groupby("time.month").mean()
    # Each month's mean averages ~28 days x 3 years of noise: 5 standard errors bound all cells.
    bound = 5 * RECIPE.noise_std / np.sqrt(28 * RECIPE.years)
    assert float(abs(computed - truth).max()) < bound


def test_seasons_are_opposite_in_the_two_hemispheres_and_the_trend_is_there(data):
    clim = data.temperature.groupby("time.month").mean()
    north, south = clim.sel(lat=slice(30, 90)).mean(("lat", "lon")), clim.sel(lat=slice(-90, -30)).mean(("lat", "lon"))
    assert int(north.argmax("month")) + 1 == 7 and int(south.argmax("month")) + 1 == 1
    yearly = data.temperature.groupby("time.year").mean(...)
    slope = np.polyfit(np.arange(RECIPE.years), yearly.values, 1)[0]
    assert abs(slope - RECIPE.trend_per_year) < 0.02


def test_precipitation_is_positive_and_wettest_at_the_equator(data):
    p = data.precipitation
    assert float(p.min()) >= 0
    assert float(p.sel(lat=slice(-10, 10)).mean()) > 2 * float(p.sel(lat=slice(60, 90)).mean())


def test_numpy_baseline_agrees_with_xarray(data):
    t = data.temperature
    baseline = monthly_climatology_numpy(t.values, t["time.month"].values)
    np.testing.assert_allclose(baseline, t.groupby("time.month").mean().values, rtol=1e-5, atol=1e-5)
