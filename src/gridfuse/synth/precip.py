"""OSSE synthesizer for the precipitation demo.

A known daily "truth" on the 0.01 deg product grid (spatially correlated, intermittent,
orographically enhanced over a synthetic DEM, wet in summer) is turned into every source
on its own native grid and time step, written in its real file layout, each with its own
errors, plus rain gauges written as CMA daily files.  Because the truth is known
everywhere, the fused product can be scored on the whole grid.

Pipeline for one source (on the source's native grid, daily first)::

    truth (fine) --shift_km--> aggregate to source cells --timing_spread--> x (1 + bias)
      --noise (lognormal)--> miss light rain --false alarms--> split into sub-daily steps

With every error knob at zero a source's daily totals equal the truth averaged over its
cells (each 0.01 deg cell belongs to the source cell holding its centre).  The sub-daily
split uses storm-timing weights that sum to one over each product day, so daily sums are
exact whatever the source's step.
"""

from __future__ import annotations

import json
import logging
import tempfile
import zlib
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import ndtri

from ..daily import DayWindow, expected_stamps
from ..grid import Grid
from ..io import TMP_MARKER
from ..sources import cmorph, era5, gldas, gsmap, imerg
from ..sources._steps import crop_slice, to_pm180
from .fields import KM_PER_DEG, aggregate_mean, ar1_fields, fractal_dem, gaussian_field

logger = logging.getLogger(__name__)

__all__ = [
    "SourceErrors",
    "TruthParams",
    "DEMO_ERRORS",
    "FORMATS",
    "native_cells",
    "synth_truth",
    "apply_errors",
    "step_weights",
    "synthesize_precip",
    "write_manifest",
]


@dataclass(frozen=True)
class SourceErrors:
    """Error knobs of one synthetic source (all zero = the truth on the source's grid).

    Attributes
    ----------
    bias : float
        Relative multiplicative bias (0.2 = 20 % too wet).
    noise : float
        Standard deviation of a mean-one lognormal factor per cell-day.
    miss_rate : float
        Probability that a light-rain cell-day (below ``light_mm``) is reported dry.
    false_alarm_rate : float
        Probability that a dry cell-day gets drizzle (exponential, mean ``drizzle_mm``).
    shift_km : float
        Displacement of the rain field (a random direction each day), km.
    timing_spread : float
        Fraction of a day's rain moved to the neighbouring days (half to each).
    """

    bias: float = 0.0
    noise: float = 0.0
    miss_rate: float = 0.0
    false_alarm_rate: float = 0.0
    shift_km: float = 0.0
    timing_spread: float = 0.0

    @classmethod
    def from_mapping(cls, m: Mapping | None) -> SourceErrors:
        m = dict(m or {})
        known = {f.name for f in fields(cls)}
        unknown = set(m) - known
        if unknown:
            raise ValueError(f"unknown error knob(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: float(v) for k, v in m.items()})

    def is_zero(self) -> bool:
        return all(getattr(self, f.name) == 0 for f in fields(self))


# Realistic and distinct demo errors: ERA5 smooth, wet-biased with drizzle; IMERG noisy;
# GSMaP gauge-corrected but displaced; GLDAS coarse and late; CMORPH misses light rain.
DEMO_ERRORS: dict[str, SourceErrors] = {
    "era5": SourceErrors(0.25, 0.30, 0.0, 0.35, 10.0, 0.15),
    "imerg": SourceErrors(0.05, 0.60, 0.15, 0.08, 6.0, 0.10),
    "gsmap": SourceErrors(-0.05, 0.30, 0.10, 0.05, 15.0, 0.05),
    "gldas": SourceErrors(0.10, 0.40, 0.10, 0.15, 8.0, 0.20),
    "cmorph": SourceErrors(-0.15, 0.40, 0.60, 0.04, 8.0, 0.10),
}


@dataclass(frozen=True)
class TruthParams:
    """Climate of the synthetic truth (defaults: a semi-arid high plateau like Xining)."""

    corr_km: float = 35.0
    rho: float = 0.5
    summer_wet_fraction: float = 0.55
    winter_wet_fraction: float = 0.06
    summer_wet_mean_mm: float = 5.0
    winter_wet_mean_mm: float = 1.5
    peak_doy: float = 200.0
    season_days: float = 45.0
    orographic_gain: float = 0.35
    light_mm: float = 2.0
    drizzle_mm: float = 0.6

    @classmethod
    def from_mapping(cls, m: Mapping | None) -> TruthParams:
        m = dict(m or {})
        known = {f.name for f in fields(cls)}
        unknown = set(m) - known
        if unknown:
            raise ValueError(
                f"unknown truth parameter(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**{k: float(v) for k, v in m.items()})


# ----------------------------------------------------------------------------- native grids
def _axis(first: float, step: float, n: int) -> np.ndarray:
    return first + step * np.arange(n)


# format -> (lat centres ascending, lon centres ascending in -180..180 or 0..360, step,
#            file stamp convention)
FORMATS = {
    "era5": (_axis(-90.0, 0.25, 721), _axis(-180.0, 0.25, 1440), "1h"),
    "imerg_hhr": (_axis(-89.95, 0.1, 1800), _axis(-179.95, 0.1, 3600), "30min"),
    "gsmap_hourly": (gsmap.LAT[::-1], to_pm180(_axis(-179.95, 0.1, 3600)), "1h"),
    "gsmap_netcdf": (gsmap.LAT[::-1], to_pm180(_axis(-179.95, 0.1, 3600)), "1h"),
    "gldas": (gldas.LAT, gldas.LON, "3h"),
    "cmorph": (cmorph.LAT, cmorph.LON, "30min"),
}


def native_cells(fmt: str, bbox) -> tuple[np.ndarray, np.ndarray]:
    """Centres (lat descending, lon ascending in -180..180) of a format's native cells
    overlapping ``bbox`` = (west, south, east, north)."""
    try:
        lat, lon, _ = FORMATS[fmt]
    except KeyError:
        raise ValueError(
            f"no synthetic writer for format {fmt!r}; known: {sorted(FORMATS)}"
        ) from None
    w, s, e, n = bbox
    lat_sl = crop_slice(lat, s, n, "latitude", fmt)
    lon = np.asarray(lon, dtype="f8")
    if lon.max() > 180 and w < 0:
        w, e = w + 360, e + 360
    lon_sl = crop_slice(lon, w, e, "longitude", fmt)
    return np.round(lat[lat_sl][::-1], 6), to_pm180(np.round(lon[lon_sl], 6))


# ----------------------------------------------------------------------------- truth
def _season(doy: np.ndarray, p: TruthParams) -> np.ndarray:
    d = np.minimum(np.abs(doy - p.peak_doy), 365.25 - np.abs(doy - p.peak_doy))
    return np.exp(-0.5 * (d / p.season_days) ** 2)


def synth_truth(
    grid: Grid,
    days: pd.DatetimeIndex,
    dem: np.ndarray,
    rng: np.random.Generator,
    params: TruthParams = TruthParams(),
    state: dict | None = None,
) -> tuple[np.ndarray, dict]:
    """Daily truth (mm/day, float32, ``(n_days, *grid.shape)``) for consecutive ``days``.

    Rain occurs where a spatially correlated, AR(1)-in-time Gaussian field, plus a
    domain-wide synoptic anomaly and an orographic term, exceeds the threshold of the
    season's wet fraction; amounts grow with the excess, an intensity field and the
    elevation.  ``state`` (returned) continues the sequence in the next block.
    """
    state = dict(state or {})
    corr = params.corr_km / (KM_PER_DEG * grid.res)
    z, last = ar1_fields(len(days), grid.shape, corr, params.rho, rng, state.get("z"))
    intensity = gaussian_field(grid.shape, corr / 3.0, rng, n=len(days))
    syn = np.empty(len(days))
    prev = state.get("syn", rng.normal(0, 0.5))
    for i in range(len(days)):
        prev = 0.6 * prev + np.sqrt(1 - 0.36) * rng.normal(0, 0.5)
        syn[i] = prev
    season = _season(np.asarray(days.day_of_year, dtype="f8"), params)
    wet = (
        params.winter_wet_fraction
        + (params.summer_wet_fraction - params.winter_wet_fraction) * season
    )
    mean_mm = (
        params.winter_wet_mean_mm + (params.summer_wet_mean_mm - params.winter_wet_mean_mm) * season
    )
    elev = (dem - float(np.mean(dem))) / 1000.0
    orog = np.clip(1.0 + params.orographic_gain * elev, 0.3, 3.0)
    q = ndtri(1.0 - wet)[:, None, None] - syn[:, None, None] - 0.25 * elev[None]
    excess = np.maximum(z - q, 0.0)
    amount = (mean_mm / 0.6)[:, None, None] * orog[None] * excess**1.3 * np.exp(0.35 * intensity)
    amount[amount < 0.05] = 0.0
    return amount.astype("f4"), {"z": last, "syn": prev}


# ----------------------------------------------------------------------------- errors
def apply_errors(
    daily: np.ndarray, err: SourceErrors, rng: np.random.Generator, params: TruthParams
) -> np.ndarray:
    """Daily source errors on a ``(n_days, ny, nx)`` array (native grid): timing spread,
    bias, lognormal noise, missed light rain, false alarms (in this order)."""
    x = np.asarray(daily, dtype="f8").copy()
    if err.timing_spread:
        f = err.timing_spread
        out = (1 - f) * x
        out[1:] += 0.5 * f * x[:-1]
        out[:-1] += 0.5 * f * x[1:]
        out[0] += 0.5 * f * x[0]  # the share that would leave the period stays
        out[-1] += 0.5 * f * x[-1]
        x = out
    if err.bias:
        x *= 1.0 + err.bias
    if err.noise:
        s = err.noise
        x *= np.exp(s * rng.standard_normal(x.shape) - 0.5 * s * s)
    if err.miss_rate:
        light = (x > 0) & (x < params.light_mm)
        x[light & (rng.random(x.shape) < err.miss_rate)] = 0.0
    if err.false_alarm_rate:
        dry = x <= 0
        fa = dry & (rng.random(x.shape) < err.false_alarm_rate)
        x[fa] = rng.exponential(params.drizzle_mm, int(fa.sum()))
    return x.astype("f4")


def _shift_cells(rng: np.random.Generator, km: float, res: float) -> tuple[int, int]:
    if km <= 0:
        return 0, 0
    ang = rng.uniform(0, 2 * np.pi)
    cells = km / (KM_PER_DEG * res)
    return int(round(cells * np.sin(ang))), int(round(cells * np.cos(ang)))


# ----------------------------------------------------------------------------- timing
def step_weights(
    days: pd.DatetimeIndex, lat: np.ndarray, lon: np.ndarray, params: np.ndarray
) -> np.ndarray:
    """Share of each half hour of each product day in the day's rain, per cell.

    ``params`` is ``(n_days, 4)``: peak slot, width (slots), and the peak's drift in slots
    per degree east and north (a moving storm).  Returns ``(n_days, 48, ny, nx)`` float64
    weights summing to one over the 48 slots.
    """
    k = np.arange(48)[None, :, None, None] + 0.5
    lat0, lon0 = float(np.mean(lat)), float(np.mean(lon))
    peak = (
        params[:, 0, None, None]
        + params[:, 2, None, None] * (lon[None, None, :] - lon0)
        + params[:, 3, None, None] * (lat[None, :, None] - lat0)
    )
    w = np.exp(-0.5 * ((k - peak[:, None]) / params[:, 1, None, None, None]) ** 2) + 0.01
    return w / w.sum(axis=1, keepdims=True)


def _timing_params(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.column_stack(
        [
            rng.uniform(4, 44, n),
            rng.uniform(2, 10, n),
            rng.normal(0, 4, n),
            rng.normal(0, 4, n),
        ]
    )


# ----------------------------------------------------------------------------- fast files
class _Template:
    """Copies of one HDF5/NetCDF4 file with only some contiguous datasets' bytes replaced.

    The template is written once by the real writer (uncompressed); each further file is
    the template's bytes with new values patched in at the datasets' offsets, which writes
    tens of thousands of small files in seconds.
    """

    def __init__(self, make, datasets: list[str], tmpdir: Path):
        tmpdir.mkdir(parents=True, exist_ok=True)
        # a private folder and a fixed name: writers may record their file's name (IMERG's
        # FileHeader does), and every copy then carries it, so it must not vary by run; the
        # folder is named like atomic_path's temporaries, so a killed run's is removed
        with tempfile.TemporaryDirectory(prefix=f".template{TMP_MARKER}", dir=tmpdir) as folder:
            path = Path(folder) / "synthetic_template"
            make(path)
            self.slots = {}
            with h5py.File(path, "r") as h:
                for name in datasets:
                    ds = h[name]
                    if ds.chunks is not None or ds.compression is not None:
                        raise RuntimeError(f"template dataset {name} is not contiguous")
                    self.slots[name] = (ds.id.get_offset(), ds.dtype, ds.shape)
            self.blob = path.read_bytes()

    def write(self, path: Path, values: Mapping[str, np.ndarray]) -> None:
        buf = bytearray(self.blob)
        for name, arr in values.items():
            off, dtype, shape = self.slots[name]
            data = np.ascontiguousarray(np.asarray(arr, dtype=dtype).reshape(shape)).tobytes()
            buf[off : off + len(data)] = data
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf)


# ----------------------------------------------------------------------------- writers
class _SourceWriter:
    """Writes one source's sub-daily steps (mm per step) in its real file layout."""

    def __init__(self, fmt: str, root: Path, lat: np.ndarray, lon: np.ndarray):
        self.fmt, self.root, self.lat, self.lon = fmt, root, lat, lon
        self.n_files = 0
        self.years: dict[int, int] = {}
        self.era5_parts: list[xr.DataArray] = []
        tmp = root
        t0 = pd.Timestamp("2000-01-01")
        zeros = np.zeros((lat.size, lon.size), "f4")
        if fmt == "imerg_hhr":
            self.tpl = _Template(
                lambda p: imerg.write_imerg_hhr(p, t0, lat, lon, zeros, compress=False),
                ["Grid/time", "Grid/precipitation"],
                tmp,
            )
        elif fmt == "cmorph":
            self.tpl = _Template(
                lambda p: cmorph.write_cmorph(
                    p, t0, lat, lon, np.stack([zeros] * 2), compress=False
                ),
                ["time", "cmorph"],
                tmp,
            )
        elif fmt == "gldas":
            self.tpl = _Template(
                lambda p: gldas.write_gldas(p, t0, lat, lon, zeros, compress=False),
                ["time", "time_bnds", "Rainf_f_tavg"],
                tmp,
            )

    def _count(self, stamp: pd.Timestamp) -> None:
        self.n_files += 1
        self.years[stamp.year] = self.years.get(stamp.year, 0) + 1

    def write(self, starts: np.ndarray, amounts: np.ndarray) -> None:
        """``starts`` (n,) interval starts; ``amounts`` (n, ny, nx) mm per step."""
        fmt = self.fmt
        starts = pd.DatetimeIndex(starts)
        if fmt == "era5":
            stamps = starts + pd.Timedelta("1h")
            self.era5_parts.append(
                xr.DataArray(
                    (amounts / 1000.0).astype("f4"),
                    dims=("time", "lat", "lon"),
                    coords={"time": stamps, "lat": self.lat, "lon": self.lon},
                )
            )
            return
        for t, a in zip(starts, amounts):
            if fmt == "imerg_hhr":
                if t.minute not in (0, 30):
                    raise ValueError(f"IMERG step start {t} is not on the half hour")
                path = self.root / f"{t:%Y}" / f"{t.day_of_year:03d}" / imerg.hhr_name(t)
                secs = (t - pd.Timestamp("1980-01-06")) // pd.Timedelta("1s")
                stored = (a * 2.0).astype("f4")[::-1].T[None]  # mm/30 min -> mm/hr, (1, lon, lat)
                self.tpl.write(path, {"Grid/time": [secs], "Grid/precipitation": stored})
                self._count(t)
            elif fmt in ("gsmap_hourly", "gsmap_netcdf"):
                folder = self.root / f"{t:%Y}" / f"{t:%m}" / f"{t:%d}"
                if fmt == "gsmap_hourly":
                    path = folder / gsmap.hourly_name(t)
                    folder.mkdir(parents=True, exist_ok=True)
                    gsmap.write_gsmap_binary(path, self.lat, self.lon, a)
                else:
                    gsmap.write_gsmap_netcdf(
                        folder / gsmap.netcdf_name(t), t, self.lat, self.lon, a
                    )
                self._count(t)
            elif fmt == "gldas":
                end = t + pd.Timedelta("3h")
                path = self.root / f"{end:%Y}" / f"{end.day_of_year:03d}" / gldas.gldas_name(end)
                days = (end - pd.Timestamp("2000-01-01")) / pd.Timedelta("1D")
                self.tpl.write(
                    path,
                    {
                        "time": [days],
                        "time_bnds": [[days - 0.125, days]],
                        "Rainf_f_tavg": (a / 10800.0).astype("f4")[::-1][None],
                    },
                )
                self._count(end)
            else:
                raise ValueError(f"no synthetic writer for format {fmt!r}")

    def write_cmorph_hours(self, starts: np.ndarray, amounts: np.ndarray) -> None:
        """CMORPH: pairs of half hours (HH:00, HH:30) per hourly file."""
        starts = pd.DatetimeIndex(starts)
        if len(starts) % 2 or np.any(starts[::2].minute != 0):
            raise ValueError("CMORPH steps must come in whole hours")
        for j in range(0, len(starts), 2):
            t = starts[j]
            path = self.root / f"{t:%Y}" / f"{t:%m}" / f"{t:%d}" / cmorph.cmorph_name(t)
            mins = (t - pd.Timestamp("1998-01-01")) / pd.Timedelta("1min")
            stored = (amounts[j : j + 2] * 2.0).astype("f4")[:, ::-1]
            self.tpl.write(path, {"time": [mins, mins + 30], "cmorph": stored})
            self._count(t)

    def finish(self) -> None:
        """ERA5: one file per UTC month (new CDS layout), as monthly downloads."""
        if self.fmt != "era5" or not self.era5_parts:
            return
        tp = xr.concat(self.era5_parts, dim="time")
        months = pd.DatetimeIndex(tp["time"].values).to_period("M")
        for m in months.unique():
            part = tp.isel(time=np.flatnonzero(months == m))
            ds = xr.Dataset({"tp": part.assign_attrs(units="m", long_name="Total precipitation")})
            era5.write_era5(self.root / f"era5_tp_{m.strftime('%Y%m')}.nc", ds, flavour="new")
            self._count(m.to_timestamp())
        self.era5_parts = []


# ----------------------------------------------------------------------------- driver
def _seed(seed: int, *names) -> np.random.Generator:
    key = [int(seed)] + [zlib.crc32(str(n).encode()) for n in names]
    return np.random.default_rng(np.random.SeedSequence(key))


@dataclass
class _Source:
    name: str
    fmt: str
    err: SourceErrors
    lat: np.ndarray
    lon: np.ndarray
    daily: list = field(default_factory=list)


def synthesize_precip(
    out: str | Path,
    grid: Grid,
    start,
    end,
    window: DayWindow,
    sources: Mapping[str, Mapping],
    *,
    seed: int = 42,
    margin: float = 0.5,
    n_stations: int = 40,
    gauge_noise: float = 0.05,
    truth: Mapping | None = None,
    block_days: int = 32,
    write_gauges: bool = True,
    threads: int = 1,
) -> dict:
    """Synthesize the truth, every source and the gauges of a precipitation demo.

    Parameters
    ----------
    out : path
        ``results/<product>`` folder; writes ``raw/<source>/...`` (real layouts),
        ``raw/truth/{year}.nc`` (truth on ``grid``), ``raw/static/dem.tif``,
        ``raw/stations/`` (CMA daily files) and returns the manifest (not written).
    grid : Grid
        Product grid (0.01 deg).
    start, end : date-like
        Inclusive product period.
    window : DayWindow
        Product day window.
    sources : mapping
        Source name -> ``{"format": ..., "errors": {knob: value}}``.
    seed : int
        Seed of every random draw.
    margin : float
        Degrees around ``grid`` that each source covers (as the ingest crop).
    n_stations : int
        Number of gauges (placed on whole arc-minutes inside ``grid``).
    gauge_noise : float
        Relative (lognormal) gauge error.
    truth : mapping, optional
        :class:`TruthParams` overrides.
    block_days : int
        Days generated at once (bounds memory).
    write_gauges : bool
        Write the CMA gauge files (needs :mod:`gridfuse.stations`).
    threads : int
        Worker processes writing the sources' files.

    Returns
    -------
    dict
        The manifest: files per source and year, truth files, DEM, stations.
    """
    out = Path(out)
    raw = out / "raw"
    params = TruthParams.from_mapping(truth)
    days = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D")
    cover = grid.padded(margin)
    max_shift = max(
        [SourceErrors.from_mapping(s.get("errors")).shift_km for s in sources.values()] + [0.0]
    )
    if max_shift > 30:
        raise ValueError(f"shift_km above 30 km is not supported (got {max_shift})")
    # the truth domain covers every source cell overlapping the covered region, plus shifts
    ext = grid.padded(margin + 0.3 + max_shift / KM_PER_DEG + 0.05)
    dem = fractal_dem(ext, _seed(seed, "dem"))
    from ..io import write_geotiff, write_netcdf

    write_geotiff(dem, raw / "static" / "dem.tif", grid=ext, nodata=-9999.0)
    rows = slice(
        int(round((ext.north - grid.north) / grid.res)),
        int(round((ext.north - grid.south) / grid.res)),
    )
    cols = slice(
        int(round((grid.west - ext.west) / grid.res)),
        int(round((grid.east - ext.west) / grid.res)),
    )
    srcs: list[_Source] = []
    for name, sc in sources.items():
        fmt = sc["format"]
        lat, lon = native_cells(fmt, cover.bounds)
        srcs.append(_Source(name, fmt, SourceErrors.from_mapping(sc.get("errors")), lat, lon))
    logger.info(
        "synthesizing %d days on %s (truth domain %s), sources %s",
        len(days),
        grid.describe(),
        ext.describe(),
        {s.name: f"{s.fmt} {s.lat.size}x{s.lon.size}" for s in srcs},
    )
    rng_truth = _seed(seed, "truth")
    state = None
    truth_years: dict[int, list[np.ndarray]] = {}
    for b0 in range(0, len(days), block_days):
        bdays = days[b0 : b0 + block_days]
        t, state = synth_truth(ext, bdays, dem, rng_truth, params, state)
        for y in np.unique(bdays.year):
            truth_years.setdefault(int(y), []).append(t[bdays.year == y][:, rows, cols])
        for s in srcs:
            rng = _seed(seed, "shift", s.name, b0)
            if s.err.shift_km:
                shifted = np.empty_like(t)
                for i in range(len(bdays)):
                    dy, dx = _shift_cells(rng, s.err.shift_km, ext.res)
                    shifted[i] = np.roll(t[i], (dy, dx), axis=(0, 1))
            else:
                shifted = t
            s.daily.append(aggregate_mean(shifted, ext.lat, ext.lon, s.lat, s.lon))
        del t
    truth_files = {}
    for y, parts in truth_years.items():
        arr = np.concatenate(parts)
        ydays = days[days.year == y]
        da = grid.template(ydays, name="precip")
        da.values[:] = arr
        path = raw / "truth" / f"{y}.nc"
        write_netcdf(
            da.to_dataset(),
            path,
            attrs={"synthetic_seed": seed, "kind": "OSSE truth"},
            utc_start_hour=window.utc_start_hour,
            what="OSSE truth",
        )
        truth_files[y] = str(path)
    # sources: errors on daily values, then the sub-daily split and the files (one
    # process per source when threads > 1: writing many small files is the slow part)
    timing = _timing_params(_seed(seed, "timing"), len(days))
    jobs = []
    for s in srcs:
        daily = np.concatenate(s.daily)
        s.daily = []
        noisy = apply_errors(daily, s.err, _seed(seed, "errors", s.name), params)
        jobs.append((s.fmt, raw / s.name, s.lat, s.lon, noisy, timing, days, window, block_days))
    if threads > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(threads, len(jobs))) as pool:
            written = list(pool.map(_write_source, *zip(*jobs)))
    else:
        written = [_write_source(*job) for job in jobs]
    manifest_sources = {}
    for s, (n_files, years) in zip(srcs, written):
        manifest_sources[s.name] = {
            "format": s.fmt,
            "folder": str(raw / s.name),
            "n_files": n_files,
            "files_per_year": {str(k): v for k, v in sorted(years.items())},
            "cells": [int(s.lat.size), int(s.lon.size)],
            "errors": asdict(s.err),
        }
        logger.info("%s (%s): %d files", s.name, s.fmt, n_files)
    stations = {}
    if write_gauges:
        stations = _write_gauges(
            raw / "stations",
            grid,
            days,
            truth_years,
            dem[rows, cols],
            n_stations,
            gauge_noise,
            seed,
        )
    return {
        "kind": "precip",
        "seed": seed,
        "grid": list(grid.bounds) + [grid.res],
        "truth_domain": list(ext.bounds),
        "period": [str(days[0].date()), str(days[-1].date())],
        "utc_start_hour": window.utc_start_hour,
        "truth_params": asdict(params),
        "sources": manifest_sources,
        "truth": {str(k): v for k, v in truth_files.items()},
        "dem": str(raw / "static" / "dem.tif"),
        "stations": stations,
    }


def _write_source(fmt, root, lat, lon, noisy, timing, days, window, block_days):
    """Split a source's daily values into its steps and write its files; returns
    ``(n_files, {year: n_files})``."""
    step = pd.Timedelta(FORMATS[fmt][2])
    per = int(step / pd.Timedelta("30min"))
    writer = _SourceWriter(fmt, root, lat, lon)
    for b0 in range(0, len(days), block_days):
        bdays = days[b0 : b0 + block_days]
        nd = len(bdays)
        w = step_weights(bdays, lat, lon, timing[b0 : b0 + nd])
        w = w.reshape(nd, 48 // per, per, lat.size, lon.size).sum(axis=2)
        amounts = (noisy[b0 : b0 + nd, None].astype("f8") * w).astype("f4")
        starts = expected_stamps(bdays, window, "start", step).ravel()
        amounts = amounts.reshape((-1, lat.size, lon.size))
        if fmt == "cmorph":
            writer.write_cmorph_hours(starts, amounts)
        else:
            writer.write(starts, amounts)
    writer.finish()
    return writer.n_files, writer.years


def _write_gauges(folder, grid, days, truth_years, dem, n, noise, seed) -> dict:
    """Gauges on whole arc-minutes inside ``grid`` (CMA files store degrees + minutes)."""
    from ..stations.cma import write_cma_daily

    rng = _seed(seed, "gauges")
    # candidate positions: whole minutes at least 3 cells inside the grid, one per cell
    lat_m = np.arange(np.ceil((grid.south + 0.03) * 60), np.floor((grid.north - 0.03) * 60) + 1)
    lon_m = np.arange(np.ceil((grid.west + 0.03) * 60), np.floor((grid.east - 0.03) * 60) + 1)
    if lat_m.size * lon_m.size < n:
        raise ValueError(f"grid {grid.describe()} too small for {n} gauges on arc-minutes")
    pick = rng.choice(lat_m.size * lon_m.size, size=n, replace=False)
    lat = lat_m[pick // lon_m.size] / 60.0
    lon = lon_m[pick % lon_m.size] / 60.0
    r, c = grid.rowcol(lon, lat)
    truth = np.concatenate([np.concatenate(truth_years[y]) for y in sorted(truth_years)])
    vals = truth[:, r, c].astype("f8")
    if noise:
        vals = vals * np.exp(noise * rng.standard_normal(vals.shape) - 0.5 * noise**2)
    vals = np.round(vals, 1)
    ids = [f"52{100 + 7 * i:03d}" for i in range(n)]
    stations = pd.DataFrame(
        {"station": ids, "lat": lat, "lon": lon, "elevation": np.round(dem[r, c].astype("f8"), 1)}
    )
    values = pd.DataFrame(
        {
            "station": np.tile(ids, len(days)),
            "date": np.repeat(days.values, n),
            "value": vals.ravel(),
        }
    )
    files = write_cma_daily(values, stations, folder)
    return {
        "folder": str(folder),
        "n_files": len(files),
        "n_stations": n,
        "ids": ids,
        "station_table": stations.to_dict(orient="list"),
    }


def write_manifest(manifest: dict, path: str | Path) -> Path:
    """Write the manifest JSON atomically (the synth rule's output marker)."""
    from ..io import atomic_path

    with atomic_path(path, suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1, default=str))
    return Path(path)
