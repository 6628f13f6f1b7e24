"""Synthetic reanalysis-like climate data whose statistics are known from how it is made.

Daily near-surface temperature (°C) and precipitation (mm/day) on a regular global grid:
a latitude-dependent mean, a seasonal cycle opposite in the two hemispheres, a warming
trend and Gaussian noise.  No download is needed, and because :func:`expected_temperature`
gives the noise-free field, notebooks and tests can check an analysis against the truth.
The arrays are lazy (dask), so the data is made where it is computed: on Dask workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr


@dataclass(frozen=True)
class Recipe:
    """How the data is made; every number here is part of the known truth."""

    years: int = 10
    nlat: int = 64
    nlon: int = 128
    start_year: int = 2000
    trend_per_year: float = 0.03  # °C per year, everywhere
    noise_std: float = 1.5  # °C, independent per day and cell
    peak_day: int = 196  # mid-July: the northern summer peak
    seed: int = 42
    chunk_days: int = 365

    def coords(self) -> dict[str, np.ndarray]:
        time = pd.date_range(f"{self.start_year}-01-01", f"{self.start_year + self.years - 1}-12-31", freq="D")
        step = 180 / self.nlat
        lat = np.linspace(-90 + step / 2, 90 - step / 2, self.nlat)
        lon = np.arange(self.nlon) * (360 / self.nlon)
        return {"time": time.values, "lat": lat, "lon": lon}


def _mean_temperature(lat: np.ndarray) -> np.ndarray:
    """About 27 °C at the equator, -22 °C at the poles."""
    return 27.0 - 0.006 * lat**2


def _amplitude(lat: np.ndarray) -> np.ndarray:
    """Half the seasonal swing; negative south of the equator (summer in January)."""
    return 0.2 * lat


def expected_temperature(recipe: Recipe) -> xr.DataArray:
    """The noise-free temperature, as numpy (small recipes): the truth to compare with."""
    c = recipe.coords()
    time = pd.DatetimeIndex(c["time"])
    phase = 2 * np.pi * (time.day_of_year.values - recipe.peak_day) / 365.25
    years = (time - time[0]).days.values / 365.25
    field = (
        _mean_temperature(c["lat"])[None, :, None]
        + _amplitude(c["lat"])[None, :, None] * np.cos(phase)[:, None, None]
        + recipe.trend_per_year * years[:, None, None]
    )
    field = np.broadcast_to(field, (len(time), recipe.nlat, recipe.nlon))
    return xr.DataArray(field, coords=c, dims=("time", "lat", "lon"), name="temperature")


def make_dataset(recipe: Recipe = Recipe()) -> xr.Dataset:
    """The lazy dataset: temperature and precipitation, chunked by year."""
    c = recipe.coords()
    time = pd.DatetimeIndex(c["time"])
    shape = (len(time), recipe.nlat, recipe.nlon)
    chunks = (recipe.chunk_days, recipe.nlat, recipe.nlon)
    rng = da.random.default_rng(recipe.seed)
    t = da.from_array((time - time[0]).days.values / 365.25, chunks=recipe.chunk_days)[:, None, None]
    phase = da.from_array(2 * np.pi * (time.day_of_year.values - recipe.peak_day) / 365.25, chunks=recipe.chunk_days)
    lat = c["lat"][None, :, None]
    temperature = (
        _mean_temperature(lat)
        + _amplitude(lat) * da.cos(phase)[:, None, None]
        + recipe.trend_per_year * t
        + rng.normal(0.0, recipe.noise_std, size=shape, chunks=chunks)
    ).astype("float32")
    # Wettest near the equator, wetter in local summer; gamma-distributed days.
    wet = 2.0 + 6.0 * np.exp(-((lat / 15.0) ** 2))
    mean_precip = wet * (1 + 0.3 * np.sign(lat) * da.cos(phase)[:, None, None])
    precipitation = (rng.gamma(0.8, 1.0, size=shape, chunks=chunks) * mean_precip / 0.8).astype("float32")
    ds = xr.Dataset(
        {
            "temperature": (("time", "lat", "lon"), temperature, {"units": "degC", "long_name": "2 m temperature"}),
            "precipitation": (("time", "lat", "lon"), precipitation, {"units": "mm/day", "long_name": "precipitation"}),
        },
        coords=c,
        attrs={"title": "AI Factory Workbench synthetic reanalysis", "recipe": repr(recipe)},
    )
    ds["lat"].attrs.update(units="degrees_north")
    ds["lon"].attrs.update(units="degrees_east")
    return ds


def monthly_climatology_numpy(values: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Mean over time for each calendar month, with plain NumPy (the baseline)."""
    return np.stack([values[months == m].mean(axis=0) for m in range(1, 13)])
