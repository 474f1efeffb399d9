"""The source-format registry: every fact about a gridded input format, in one place.

Each entry (:class:`SourceFormat`) says how to read a format (its reader), what the files
hold (variables with their units and physically possible ranges), how much of it there is
(steps and files per day, native resolution, seconds per file to read) and when the product
exists (coverage by product version).  The workflow, the resource model, the readers and the
input QC all ask the registry instead of keeping their own tables.

API
---
:func:`get_format`, ``FORMATS[name]``
    The :class:`SourceFormat` of a format name (the ``format`` key of a source).
:func:`formats`
    Names of the registered formats (optionally of one product kind).
:meth:`SourceFormat.coverage`, :meth:`SourceFormat.covered_days`, :meth:`SourceFormat.covers_year`
    Dates the product exists, for a product version, within the configured
    ``first_year``/``last_year``.
:meth:`SourceFormat.variable`
    The :class:`Variable` spec (canonical units, range, magnitude bounds) of a variable.
:meth:`SourceFormat.reader`
    The reader, ``read(req: ReadRequest) -> xarray.Dataset`` (imported on first use).
:attr:`SourceFormat.steps_per_day`, :attr:`~SourceFormat.files_per_day`,
:attr:`~SourceFormat.native_res`, :attr:`~SourceFormat.seconds_per_file`
    Facts for the resource model (``gridfuse.cost``).
:func:`register`
    Add a format (a new source format is one module with a reader plus one
    :func:`register` call; ``docs/extending.md``).

Coverage notes (sources in ``shared/research/input-formats.md``): IMERG V07 Final starts
1998-01-01 and V06 Final 2000-06-01; GSMaP v8 and CMORPH CDR V1.0 start 1998-01-01; GLDAS-2.1
starts 2000-01-01; ERA5 1940-01-01; the TROPOMI SO2 record (reprocessed RPRO) starts with
orbit 02818 on 2018-04-30; GSMaP's hourly NetCDF is distributed from 2021-12 on.
``seconds_per_file`` of ERA5 (60 s a month-file, 120 s with the meteorology) is the value the
resource model used before the registry; the others are estimates (about 0.3 s per file for
the per-step formats: the demo's files took 0.03-0.07 s, real global files are larger).
"""

from __future__ import annotations

import datetime as _dt
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "Variable",
    "Version",
    "SourceFormat",
    "FORMATS",
    "register",
    "get_format",
    "formats",
]


@dataclass(frozen=True)
class Variable:
    """A variable a format's files hold, as the reader checks it.

    Attributes
    ----------
    name : str
        Default name in the file (the source's ``variable`` key may override it).
    units : str
        Canonical units: the reader converts the file's ``units`` attribute to these (see
        :mod:`gridfuse.sources.units`) before the range check.
    valid_min, valid_max : float or None
        Physically possible range in ``units``; values outside are masked and counted.
    description : str
        What the variable is (used in messages).
    extra_units : mapping
        Units that mean the canonical ones for this variable only, with ``(scale,
        offset)``: e.g. ``"mm"`` for a daily-total variable in ``mm day-1``.
    median_abs_max : float or None
        The median absolute value of a file must stay below this; larger means the values
        are in other units than labelled (TROPOMI columns in DU labelled mol m-2).
    positive_median_max : float or None
        Upper bound of the median of a file's positive values (with at least
        ``min_positive`` of them): ERA5 ``tp`` in mm labelled m.
    min_positive : int
        Positive values needed before ``positive_median_max`` is judged.
    year_max_min : float or None
        The largest value of a source-year (of at least 28 covered days) must reach this:
        ERA5 ``tp`` in m labelled mm stays 1000 times too small.
    clip_min : float or None
        Values between ``valid_min`` and this are set to it (ERA5's tiny negative
        accumulations from packing round-off become 0).
    """

    name: str
    units: str
    valid_min: float | None = None
    valid_max: float | None = None
    description: str = ""
    extra_units: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    median_abs_max: float | None = None
    positive_median_max: float | None = None
    min_positive: int = 100
    year_max_min: float | None = None
    clip_min: float | None = None


@dataclass(frozen=True)
class Version:
    """A product version and the dates it covers (``last`` None = ongoing)."""

    name: str
    first: _dt.date | None
    last: _dt.date | None = None


@dataclass(frozen=True)
class SourceFormat:
    """Everything the workflow, the readers and the QC need to know about a format.

    Attributes
    ----------
    name : str
        Format name (the ``format`` key of a source in the config).
    kinds : tuple of str
        Product kinds the format feeds (``precip``, ``so2``).
    reader_ref : str
        ``"module:attribute"`` of the reader: a function ``read(req) -> xarray.Dataset``
        or a :class:`gridfuse.sources._steps.StepFormat` (read by the one step adapter).
    description : str
        Product, version and file layout (one line).
    outputs : tuple of str
        Variables of the daily file (``daily/{source}/{year}.nc``).
    variables : tuple of Variable
        Variables read from the files, with units and ranges.
    steps_per_day : float
        Native time steps per day (48 for half-hourly, 1 for daily files).
    files_per_day : float
        Files per day (ERA5: one file a month, ~1/30).
    native_res : float or None
        Native grid spacing in degrees (None: any, e.g. ``netcdf_daily``).
    seconds_per_file : float
        Seconds one worker takes to read one file (resource model).
    versions : tuple of Version
        Coverage by product version; the first is the default.  Empty: the format says
        nothing about coverage (only the source's ``first_year``/``last_year`` apply).
    file_pattern : str
        File names, for documentation and messages.
    count_variables : tuple of str
        Output variables that are counts (not used to decide whether a day has data).
    global_files : bool
        The real archive's files cover the globe, so reading a region decompresses far more
        than the region: the resource model adds the measured per-file read
        (``ingest_s_per_file.<name>`` of ``benchmarks/cost_constants.py``) for real inputs.
    """

    name: str
    kinds: tuple[str, ...]
    reader_ref: str
    description: str
    outputs: tuple[str, ...]
    variables: tuple[Variable, ...]
    steps_per_day: float
    files_per_day: float
    native_res: float | None
    seconds_per_file: float
    versions: tuple[Version, ...] = ()
    file_pattern: str = ""
    count_variables: tuple[str, ...] = ()
    global_files: bool = False

    # ------------------------------------------------------------------ variables
    def variable(self, name: str = "") -> Variable:
        """The spec of variable ``name`` (empty: the first one).

        A name that is not registered (a ``variable`` override in the config) takes the
        first variable's units and range under the new name.
        """
        if not name:
            return self.variables[0]
        for v in self.variables:
            if v.name == name:
                return v
        first = self.variables[0]
        return Variable(**{**first.__dict__, "name": name})

    # ------------------------------------------------------------------ coverage
    def version(self, name: str = "") -> Version | None:
        """The :class:`Version` called ``name`` (prefix match, case-insensitive: ``V07B``
        finds ``V07``); empty gives the default; None when the format has no versions."""
        if not self.versions:
            return None
        if not name:
            return self.versions[0]
        key = str(name).upper()
        for v in self.versions:
            if key == v.name.upper() or key.startswith(v.name.upper()):
                return v
        raise KeyError(
            f"format {self.name}: unknown product version {name!r}; known: "
            f"{[v.name for v in self.versions]}"
        )

    def coverage(
        self,
        version: str = "",
        first_year: int | None = None,
        last_year: int | None = None,
        start=None,
    ) -> tuple[_dt.date | None, _dt.date | None]:
        """First and last date with data (None = unbounded).

        The product version's dates, narrowed to the configured ``first_year``..``last_year``
        and to ``start`` (a later first date, e.g. the first synthetic orbit of the demo).
        """
        v = self.version(version)
        first = v.first if v is not None else None
        last = v.last if v is not None else None
        bounds_first = [d for d in (first,) if d is not None]
        if first_year is not None:
            bounds_first.append(_dt.date(int(first_year), 1, 1))
        if start:
            bounds_first.append(pd.Timestamp(start).date())
        bounds_last = [d for d in (last,) if d is not None]
        if last_year is not None:
            bounds_last.append(_dt.date(int(last_year), 12, 31))
        return (
            max(bounds_first) if bounds_first else None,
            min(bounds_last) if bounds_last else None,
        )

    def covered_days(self, days, **coverage_kw) -> pd.DatetimeIndex:
        """The product ``days`` inside :meth:`coverage` (keyword arguments as there)."""
        days = pd.DatetimeIndex(days).normalize()
        first, last = self.coverage(**coverage_kw)
        keep = np.ones(days.size, bool)
        if first is not None:
            keep &= days >= pd.Timestamp(first)
        if last is not None:
            keep &= days <= pd.Timestamp(last)
        return days[keep]

    def covers_year(self, year: int, **coverage_kw) -> bool:
        """Whether any day of ``year`` is covered."""
        first, last = self.coverage(**coverage_kw)
        return (first is None or first.year <= int(year)) and (
            last is None or int(year) <= last.year
        )

    # ------------------------------------------------------------------ reader
    def reader(self) -> Callable:
        """The reader ``read(req: ReadRequest) -> xarray.Dataset``."""
        module, _, attr = self.reader_ref.partition(":")
        obj = getattr(importlib.import_module(module), attr)
        from ._steps import StepFormat, read_steps

        if isinstance(obj, StepFormat):
            return lambda req: read_steps(obj, req)
        return obj

    # ------------------------------------------------------------------ cost
    def files_in(self, days: float) -> int:
        """Files in ``days`` days (at least one)."""
        return max(1, int(np.ceil(self.files_per_day * days - 1e-9)))

    def steps_in(self, days: float) -> int:
        """Time steps in ``days`` days."""
        return int(round(self.steps_per_day * days))


FORMATS: dict[str, SourceFormat] = {}


def register(fmt: SourceFormat, *, replace: bool = False) -> SourceFormat:
    """Add a format to the registry (an error if the name is taken, unless ``replace``)."""
    if fmt.name in FORMATS and not replace:
        raise KeyError(f"source format {fmt.name!r} is already registered")
    if not fmt.variables:
        raise ValueError(f"source format {fmt.name!r}: at least one variable is needed")
    FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> SourceFormat:
    """The registered format ``name``; the error lists the known formats."""
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown source format {name!r}; known: {sorted(FORMATS)}") from None


def formats(kind: str | None = None) -> list[str]:
    """Registered format names (of product ``kind`` when given), sorted."""
    return sorted(n for n, f in FORMATS.items() if kind is None or kind in f.kinds)


# ---------------------------------------------------------------------------- entries
_D = _dt.date
# hourly / half-hourly precipitation rates: 305 mm fell in 42 min (Holt, 1947), i.e. a mean
# rate above 400 mm/h; 500 mm/h bounds every real rate
_RATE = {"units": "mm h-1", "valid_min": 0.0, "valid_max": 500.0}
# daily totals: the largest known day is 1825 mm (Foc-Foc, La Reunion, 1966)
_DAILY = {"units": "mm day-1", "valid_min": 0.0, "valid_max": 2000.0}
_DAILY_TOTAL_UNITS = {"mm": (1.0, 0.0), "kg m-2": (1.0, 0.0), "m": (1000.0, 0.0)}
# ERA5 tp (m per hour): the median of a month's positive hourly values is ~1e-4 m (0.3 mm
# over Telangana in a monsoon week, 0.09 mm in the 12 UTC samples of shared/realdata); in mm
# labelled m it is ~0.1-0.3 "m".  A year's wettest hour over a region passes 0.1 mm (1e-4 m);
# in m labelled mm it stays near 1e-5.  Legacy int16 packing leaves tiny negatives.
_ERA5_TP = Variable(
    "tp",
    "m",
    -1e-5,
    0.5,
    "ERA5 hourly total precipitation (m per hour)",
    positive_median_max=0.01,
    year_max_min=1e-4,
    clip_min=0.0,
)
_ERA5_VERSIONS = (Version("ERA5", _D(1940, 1, 1)),)
_IMERG_VERSIONS = (Version("V07", _D(1998, 1, 1)), Version("V06", _D(2000, 6, 1)))

register(
    SourceFormat(
        "era5",
        ("precip",),
        "gridfuse.sources.era5:read",
        "ERA5 hourly single levels, total_precipitation; legacy or new-CDS NetCDF, CDS ZIPs",
        ("precip",),
        (_ERA5_TP,),
        steps_per_day=24,
        files_per_day=1 / 30,
        native_res=0.25,
        seconds_per_file=60.0,
        versions=_ERA5_VERSIONS,
        file_pattern="*.nc / *.zip (any monthly split)",
    )
)
register(
    SourceFormat(
        "imerg_hhr",
        ("precip",),
        "gridfuse.sources.imerg:HHR",
        "GPM IMERG Final half-hourly HDF5 (V06 precipitationCal, V07 precipitation)",
        ("precip",),
        (
            Variable("precipitation", description="IMERG precipitation rate", **_RATE),
            Variable("precipitationCal", description="IMERG V06 precipitation rate", **_RATE),
        ),
        steps_per_day=48,
        files_per_day=48,
        native_res=0.1,
        seconds_per_file=0.3,
        versions=_IMERG_VERSIONS,
        file_pattern="3B-HHR.MS.MRG.3IMERG.YYYYMMDD-SHHMMSS-EHHMMSS.MMMM.V07B.HDF5",
        global_files=True,
    )
)
register(
    SourceFormat(
        "imerg_daily",
        ("precip",),
        "gridfuse.sources.imerg:DAILY",
        "GPM IMERG Final daily NetCDF4 (UTC-day totals)",
        ("precip",),
        (
            Variable(
                "precipitation",
                description="IMERG daily precipitation",
                extra_units=_DAILY_TOTAL_UNITS,
                **_DAILY,
            ),
            Variable(
                "precipitationCal",
                description="IMERG V06 daily precipitation",
                extra_units=_DAILY_TOTAL_UNITS,
                **_DAILY,
            ),
        ),
        steps_per_day=1,
        files_per_day=1,
        native_res=0.1,
        seconds_per_file=0.3,
        versions=_IMERG_VERSIONS,
        file_pattern="3B-DAY.MS.MRG.3IMERG.YYYYMMDD-S000000-E235959.V07B.nc4",
    )
)
_GSMAP_V8 = (Version("v8", _D(1998, 1, 1)),)
register(
    SourceFormat(
        "gsmap_hourly",
        ("precip",),
        "gridfuse.sources.gsmap:HOURLY",
        "GSMaP hourly gzipped float32 binary, 3600 x 1200 (Gauge v8; MVK/NRT/NOW same layout)",
        ("precip",),
        (Variable("precip_rate", description="GSMaP hourly rain rate", **_RATE),),
        steps_per_day=24,
        files_per_day=24,
        native_res=0.1,
        seconds_per_file=0.3,
        versions=_GSMAP_V8,
        file_pattern="gsmap_{gauge,mvk,nrt,now,...}.YYYYMMDD.HH00.vP.RSKI.J.dat.gz",
        global_files=True,
    )
)
register(
    SourceFormat(
        "gsmap_daily",
        ("precip",),
        "gridfuse.sources.gsmap:DAILY",
        "GSMaP daily mean-rate binaries (00Z-23Z or p12Z-11Z windows)",
        ("precip",),
        (
            Variable(
                "precip_rate",
                "mm h-1",
                0.0,
                2000.0 / 24.0,
                "GSMaP daily mean rain rate",
            ),
        ),
        steps_per_day=1,
        files_per_day=1,
        native_res=0.1,
        seconds_per_file=0.3,
        versions=_GSMAP_V8,
        file_pattern="gsmap_gauge.YYYYMMDD.0.1d.daily.{00Z-23Z,p12Z-11Z}.v8.*.dat.gz",
    )
)
register(
    SourceFormat(
        "gsmap_netcdf",
        ("precip",),
        "gridfuse.sources.gsmap:NETCDF",
        "GSMaP hourly NetCDF (hourlyPrecipRateGC)",
        ("precip",),
        (Variable("hourlyPrecipRateGC", description="GSMaP hourly rain rate", **_RATE),),
        steps_per_day=24,
        files_per_day=24,
        native_res=0.1,
        seconds_per_file=0.3,
        versions=(Version("v8", _D(2021, 12, 1)),),
        file_pattern="gsmap_gauge.YYYYMMDD.HH00.v8*.nc or GPMMRG_MAP_YYMMDDHHMM_H_*.nc",
    )
)
register(
    SourceFormat(
        "gldas",
        ("precip",),
        "gridfuse.sources.gldas:STEPS",
        "GLDAS-2.1 Noah 0.25 deg 3-hourly NetCDF4, Rainf_f_tavg",
        ("precip",),
        (
            Variable(
                "Rainf_f_tavg",
                "kg m-2 s-1",
                0.0,
                500.0 / 3600.0,
                "GLDAS total precipitation rate",
            ),
        ),
        steps_per_day=8,
        files_per_day=8,
        native_res=0.25,
        seconds_per_file=0.3,
        versions=(Version("2.1", _D(2000, 1, 1)),),
        file_pattern="GLDAS_NOAH025_3H.AYYYYMMDD.HHMM.021.nc4",
        global_files=True,
    )
)
register(
    SourceFormat(
        "cmorph",
        ("precip",),
        "gridfuse.sources.cmorph:STEPS",
        "CMORPH CDR V1.0 8 km / 30 min NetCDF (two half hours per file)",
        ("precip",),
        (Variable("cmorph", description="CMORPH precipitation rate", **_RATE),),
        steps_per_day=48,
        files_per_day=24,
        native_res=0.0727,
        seconds_per_file=0.3,
        versions=(Version("V1.0", _D(1998, 1, 1)),),
        file_pattern="CMORPH_V1.0_ADJ_8km-30min_YYYYMMDDHH.nc",
        global_files=True,
    )
)
register(
    SourceFormat(
        "geotiff_daily",
        ("precip",),
        "gridfuse.sources.gridded_daily:read_geotiff",
        "Daily GeoTIFFs (one per day, dated names) or one multi-band GeoTIFF (CHIRPS, ...)",
        ("precip",),
        (
            Variable(
                "precip",
                description="daily precipitation",
                extra_units=_DAILY_TOTAL_UNITS,
                **_DAILY,
            ),
        ),
        steps_per_day=1,
        files_per_day=1,
        native_res=None,
        seconds_per_file=0.3,
        file_pattern="*.tif / *.tif.gz",
    )
)
register(
    SourceFormat(
        "netcdf_daily",
        ("precip",),
        "gridfuse.sources.gridded_daily:read_netcdf",
        "Daily NetCDF grids (time, lat, lon) in any split (PERSIANN-CDR, regional products)",
        ("precip",),
        (
            Variable(
                "precip",
                description="daily precipitation",
                extra_units=_DAILY_TOTAL_UNITS,
                **_DAILY,
            ),
        ),
        steps_per_day=1,
        files_per_day=1 / 365,
        native_res=None,
        seconds_per_file=5.0,
        file_pattern="*.nc / *.nc4",
    )
)
register(
    SourceFormat(
        "tropomi_l2",
        ("so2",),
        "gridfuse.sources.tropomi:read",
        "Sentinel-5P TROPOMI L2 SO2 (OFFL/RPRO) NetCDF4 orbits",
        ("so2_column", "n_pixels"),
        (
            Variable(
                "sulfurdioxide_total_vertical_column",
                "mol m-2",
                -0.05,
                0.5,
                "TROPOMI SO2 total vertical column",
                median_abs_max=0.01,
            ),
        ),
        steps_per_day=1,
        files_per_day=14.2,
        native_res=0.05,
        seconds_per_file=1.0,
        versions=(Version("RPRO/OFFL", _D(2018, 4, 30)),),
        file_pattern="S5P_OFFL_L2__SO2____<start>_<end>_<orbit>_<coll>_<proc>_<prod>.nc",
        count_variables=("n_pixels",),
    )
)
register(
    SourceFormat(
        "era5_met",
        ("so2",),
        "gridfuse.sources.era5_met:read",
        "ERA5 hourly blh, t2m, d2m, u10, v10, sp, tp; NetCDF or CDS ZIPs of streams",
        ("t2m", "d2m", "rh", "blh", "sp", "u10", "v10", "ws", "wd", "tp"),
        (
            Variable("t2m", "K", 170.0, 340.0, "2 m temperature"),
            Variable("d2m", "K", 170.0, 320.0, "2 m dew point temperature"),
            Variable("blh", "m", 0.0, 10000.0, "boundary layer height"),
            Variable("sp", "Pa", 30000.0, 110000.0, "surface pressure"),
            Variable("u10", "m s-1", -100.0, 100.0, "10 m eastward wind"),
            Variable("v10", "m s-1", -100.0, 100.0, "10 m northward wind"),
            _ERA5_TP,
        ),
        steps_per_day=24,
        files_per_day=1 / 30,
        native_res=0.25,
        seconds_per_file=120.0,
        versions=_ERA5_VERSIONS,
        file_pattern="*.nc / *.zip (any monthly split)",
    )
)
