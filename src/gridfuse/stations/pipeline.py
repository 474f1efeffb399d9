"""From raw station files to the QC'd daily table: reader registry, day windows, ingest.

A reader turns raw files into :class:`Observations` (a wide table, one column per station,
plus a station table); :func:`ingest` then applies the common QC, aggregates hourly data
to product days, keeps the period, and assigns roles.  New formats are added with
:func:`register_reader`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gridfuse.kinds import StationRules, get_kind
from gridfuse.stations import cma, cnemc, generic, wide
from gridfuse.stations.qc import (
    QCLog,
    check_coordinates,
    check_duplicate_stations,
    check_inside_grid,
    check_non_positive,
    check_range,
    check_rejected_fraction,
    check_stuck,
    check_wet_median,
)
from gridfuse.stations.roles import assign_roles

logger = logging.getLogger(__name__)

__all__ = [
    "Observations",
    "ReadRequest",
    "READERS",
    "register_reader",
    "product_day",
    "hourly_to_daily",
    "ingest",
    "DAILY_COLUMNS",
    "STATION_COLUMNS",
    "BEIJING_OFFSET",
]

DAILY_COLUMNS = ["station", "date", "value", "n_valid"]
STATION_COLUMNS = ["station", "lat", "lon", "elevation", "role"]
BEIJING_OFFSET = 8  # hours ahead of UTC
STATION_LIST_NAME = "station_list.csv"  # CNEMC station list beside the day files (demo)

QC_DEFAULTS = {
    "min_value": 0.0,
    "max_value": 500.0,
    "max_hourly_value": 100.0,
    "stuck_days": 10,
    "stuck_hours": 24,
    "min_valid_hours": 20,
    "harmonize_298k": True,
    "harmonize_date": "2018-09-01",
    "max_lost_fraction": 0.1,
    "max_range_fraction": 0.05,
    "max_wet_median": 25.0,
}


@dataclass
class Observations:
    """What a reader returns.

    Attributes
    ----------
    values : DataFrame
        Wide table, one float column per station id (str).  Index: product days
        (``hourly=False``) or the END of each hour in UTC (``hourly=True``).
    stations : DataFrame
        ``station, lat, lon, elevation`` (+ ``name``, ``city``); NaN where unknown.
    hourly : bool
        Whether ``values`` is hourly.
    """

    values: pd.DataFrame
    stations: pd.DataFrame
    hourly: bool


@dataclass
class ReadRequest:
    """What a reader is asked for (see :func:`ingest` for the fields)."""

    kind: str
    path: Path
    table: Path | None
    start: pd.Timestamp
    end: pd.Timestamp
    utc_start_hour: int
    options: Mapping
    qc: QCLog


Reader = Callable[[ReadRequest], Observations]
READERS: dict[str, Reader] = {}


def register_reader(fmt: str, reader: Reader) -> None:
    """Make ``reader`` available as ``stations.format: <fmt>``."""
    READERS[fmt] = reader


# --------------------------------------------------------------------------------------
# day windows


def product_day(hour_end_utc: pd.DatetimeIndex, utc_start_hour: int) -> pd.DatetimeIndex:
    """Product day of hourly values stamped with the END of their hour (UTC).

    Day D runs from ``utc_start_hour`` H of D-1 to H of D when H > 0, and is the UTC day D
    when H = 0; an hour belongs to the day holding its start.
    """
    start = pd.DatetimeIndex(hour_end_utc) - pd.Timedelta(hours=1)
    day = (start - pd.Timedelta(hours=utc_start_hour)).normalize()
    return day + pd.Timedelta(days=1) if utc_start_hour > 0 else day


def hour_end_range(
    start: pd.Timestamp, end: pd.Timestamp, utc_start_hour: int
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last hour END (UTC) of the product days ``start`` .. ``end``."""
    first_day_start = start.normalize() + pd.Timedelta(hours=utc_start_hour)
    if utc_start_hour > 0:
        first_day_start -= pd.Timedelta(days=1)
    last = first_day_start + (end.normalize() - start.normalize()) + pd.Timedelta(days=1)
    return first_day_start + pd.Timedelta(hours=1), last


def hourly_to_daily(
    wide: pd.DataFrame, utc_start_hour: int, how: str, min_valid_hours: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Aggregate hourly values (index = hour END, UTC) to product days.

    Parameters
    ----------
    wide : DataFrame
        One column per station; NaN = missing hour.
    utc_start_hour : int
        Day window (see :func:`product_day`).
    how : {"sum", "mean"}
        Precipitation totals or concentration means.
    min_valid_hours : int
        Days with fewer valid hours are NaN.

    Returns
    -------
    values, n_valid : DataFrame
        Index = product day; ``n_valid`` counts the valid hours (0..24) of every day.
    """
    if how not in ("sum", "mean"):
        raise ValueError(f"how must be 'sum' or 'mean', got {how!r}")
    if not isinstance(wide.index, pd.DatetimeIndex):
        raise ValueError(f"hourly values need a DatetimeIndex, got {type(wide.index).__name__}")
    days = product_day(wide.index, utc_start_hour)
    v = wide.to_numpy(dtype="f8")
    ok = np.isfinite(v)
    codes, uniq = pd.factorize(days, sort=True)
    n = np.zeros((len(uniq), v.shape[1]))
    s = np.zeros((len(uniq), v.shape[1]))
    np.add.at(n, codes, ok)
    np.add.at(s, codes, np.where(ok, v, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s if how == "sum" else s / n
    out = np.where(n >= max(int(min_valid_hours), 1), out, np.nan)
    index = pd.DatetimeIndex(uniq, name="date")
    return (
        pd.DataFrame(out, index=index, columns=wide.columns),
        pd.DataFrame(n.astype("i8"), index=index, columns=wide.columns),
    )


# --------------------------------------------------------------------------------------
# readers


def _table_override(obs_stations: pd.DataFrame, table: Path | None) -> pd.DataFrame:
    if table is None:
        return obs_stations
    logger.info("station coordinates taken from %s", table)
    return generic.read_station_table(table)


def _read_cma_daily(req: ReadRequest) -> Observations:
    if req.utc_start_hour != 12:
        msg = (
            f"CMA daily records cover 20:00-20:00 Beijing time (utc_start_hour 12); the "
            f"product uses utc_start_hour {req.utc_start_hour}, records kept as they are"
        )
        logger.warning(msg)
        req.qc.record("day_window", "*", 0, msg)
    values, stations = cma.read_cma_daily(req.path, start=req.start, end=req.end, qc=req.qc)
    return Observations(values, _table_override(stations, req.table), hourly=False)


def _read_cma_hourly(req: ReadRequest) -> Observations:
    values, stations = cma.read_cma_hourly(
        req.path, utc_offset=req.options.get("utc_offset", 0), qc=req.qc
    )
    return Observations(values, _table_override(stations, req.table), hourly=True)


def _read_generic(req: ReadRequest) -> Observations:
    if req.table is None:
        raise ValueError(
            f"generic_csv stations at {req.path} need a station table (stations.table)"
        )
    values, resolution = generic.read_generic_csv(
        req.path,
        resolution=req.options.get("resolution", "auto"),
        utc_offset=req.options.get("utc_offset", 0),
        qc=req.qc,
    )
    return Observations(values, generic.read_station_table(req.table), resolution == "hourly")


def _read_cnemc(req: ReadRequest) -> Observations:
    table = req.table or (req.path / STATION_LIST_NAME)
    stations = cnemc.read_station_list(table)
    first, last = hour_end_range(req.start, req.end, req.utc_start_hour)
    off = pd.Timedelta(hours=BEIJING_OFFSET)
    wide = cnemc.read_china_sites(
        req.path,
        pollutant=req.options.get("pollutant", "SO2"),
        start=(first + off).normalize(),
        end=(last + off).normalize(),
        qc=req.qc,
    )
    wide.index = wide.index - off
    wide = wide[(wide.index >= first) & (wide.index <= last)]
    stations = stations.assign(elevation=np.nan)
    return Observations(wide, stations, hourly=True)


def _read_wide(req: ReadRequest) -> Observations:
    """``wide_csv``: one column per station; ``req.options["dem"]`` (a DEM path, optional)
    gives the elevations the station table lacks."""
    if req.table is None:
        raise ValueError(f"wide_csv stations at {req.path} need a station table (stations.table)")
    values = wide.read_wide_values(req.path, start=req.start, end=req.end)
    dem_path = (req.options or {}).get("dem")
    dem = wide.read_dem(dem_path) if dem_path else None
    stations = wide.read_station_table(req.table, dem=dem, ids=list(values.columns))
    return Observations(values, stations, hourly=False)


register_reader("cma_daily", _read_cma_daily)
register_reader("cma_hourly", _read_cma_hourly)
register_reader("generic_csv", _read_generic)
register_reader("cnemc", _read_cnemc)
register_reader("wide_csv", _read_wide)


# --------------------------------------------------------------------------------------
# ingest


def _to_long(values: pd.DataFrame, n_valid: pd.DataFrame) -> pd.DataFrame:
    v = values.to_numpy(dtype="f8")
    n = n_valid.to_numpy()
    rows, cols = np.nonzero(np.isfinite(v))
    out = pd.DataFrame(
        {
            "station": values.columns.to_numpy(dtype=object)[cols].astype(str),
            "date": pd.DatetimeIndex(values.index)[rows].astype("datetime64[ns]"),
            "value": v[rows, cols],
            "n_valid": n[rows, cols].astype("int64"),
        }
    )
    return out.sort_values(["station", "date"], kind="stable").reset_index(drop=True)


def _daily_values(
    values: pd.DataFrame,
    hourly: bool,
    rules: StationRules,
    q: Mapping,
    utc_start_hour: int,
    log: QCLog,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The QC'd daily values of a reader's wide table and their counts of valid hours (1
    for daily records): the kind's checks, the 298 K harmonization where it applies, and
    hours aggregated to product days (sum or mean, ``min_valid_hours``)."""
    ignore_zero = rules.stuck_ignores_zero
    if rules.drop_non_positive:
        values = check_non_positive(values, log, "concentrations")
    harmonize = rules.reference_298k and bool(q["harmonize_298k"])
    change = pd.Timestamp(q["harmonize_date"])  # Beijing-time file day
    max_range = float(q["max_range_fraction"])  # past it: values in other units
    if not hourly:
        values = check_stuck(values, int(q["stuck_days"]), log, ignore_zero, "days")
        if harmonize:
            values = cnemc.harmonize_298k(values, log, change)
        n_in = int(values.notna().to_numpy().sum())
        values = check_range(values, q["min_value"], q["max_value"], log, "daily values")
        check_rejected_fraction(log, "range", n_in, max_range, "daily")
        return values, values.notna().astype("i8")
    # stuck runs are looked for in the values as reported, before any unit conversion
    values = check_stuck(values, int(q["stuck_hours"]), log, ignore_zero, "hours")
    if harmonize:
        values = cnemc.harmonize_298k(values, log, change - pd.Timedelta(hours=BEIJING_OFFSET))
    hi = q[rules.hourly_max_key]
    n_in = int(values.notna().to_numpy().sum())
    values = check_range(values, q["min_value"], hi, log, "hourly values")
    check_rejected_fraction(log, "range", n_in, max_range, "hourly")
    hours = values.notna().to_numpy()
    values, n_valid = hourly_to_daily(
        values, utc_start_hour, rules.aggregation, int(q["min_valid_hours"])
    )
    partial = (n_valid.to_numpy() > 0) & ~np.isfinite(values.to_numpy())
    log.record_wide(
        "incomplete_day",
        pd.DataFrame(partial, columns=values.columns),
        f"days with 1..{int(q['min_valid_hours']) - 1} valid hours (< min_valid_hours)",
    )
    logger.info("aggregated %d valid hours to %d product days", int(hours.sum()), len(values))
    values = check_range(values, q["min_value"], q["max_value"], log, "daily values")
    return values, n_valid


def _keep_period(
    values: pd.DataFrame,
    n_valid: pd.DataFrame,
    stations: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    log: QCLog,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The product days of the period, without the stations that have no valid day in it
    (each removal recorded)."""
    keep = (values.index >= start) & (values.index <= end)
    values, n_valid = values[keep], n_valid[keep]
    has = values.notna().any(axis=0)
    empty = [c for c in values.columns if not has[c]]
    for s in empty:
        log.record("no_data", s, 0, "no valid daily value in the period; removed")
    log.summary("no_data", len(empty), "stations without any valid day in the period (removed)")
    values, n_valid = values.drop(columns=empty), n_valid.drop(columns=empty)
    stations = stations[stations["station"].isin(values.columns)].reset_index(drop=True)
    return values, n_valid, stations


def ingest(
    kind: str,
    fmt: str,
    path: str | os.PathLike,
    table: str | os.PathLike | None,
    grid,
    start,
    end,
    utc_start_hour: int,
    qc: Mapping | None = None,
    evaluation: Mapping | None = None,
    seed: int = 0,
    options: Mapping | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read, quality-control and aggregate station data to product days.

    Parameters
    ----------
    kind : {"precip", "so2"}
        Product kind; its station rules (:class:`gridfuse.kinds.StationRules`) decide:
        precipitation is summed over the day (mm/day), zeros are never "stuck"; SO2 is
        averaged (ug/m3 at 298 K) and non-positive values are removed.
    fmt : str
        Reader key in :data:`READERS` (``cma_daily``, ``cma_hourly``, ``generic_csv``, ``cnemc``).
    path : path
        Folder (or file) of station data.
    table : path or None
        Station table; empty/None when the data carry coordinates (CMA) or, for CNEMC,
        ``station_list.csv`` beside the day files.
    grid : gridfuse.grid.Grid
        Target grid; stations outside are removed (counted).
    start, end : date-like
        Product days kept (inclusive).
    utc_start_hour : int
        Day window (see :func:`product_day`).
    qc : mapping, optional
        ``min_value, max_value`` (range of daily values, and of hourly SO2), ``max_hourly_value``
        (hourly precipitation, mm/h), ``stuck_days``, ``stuck_hours``, ``min_valid_hours``,
        ``harmonize_298k``, ``harmonize_date``, ``max_lost_fraction`` (per year, the share
        of the expected station-days or file-hours that absent, truncated or malformed files
        may lose before the ingest fails naming them), ``max_range_fraction`` (the share
        of the values that may fall outside ``min_value``..``max_value``), ``max_wet_median``
        (precipitation: bound of the median of the positive daily values, mm/day; above
        it the values are taken to be in a smaller unit and the ingest fails).  Missing keys take
        :data:`QC_DEFAULTS`.
        For so2 with ``harmonize_298k``, values before ``harmonize_date`` 00:00 Beijing time
        (hours) or product day (daily data) are converted from 273 K to 298 K (x 273/298),
        after the stuck check (which sees the values as reported) and before the range check.
    evaluation : mapping, optional
        ``ids`` (list) or ``count`` (int) of evaluation stations.
    seed : int
        Seed of the evaluation draw.
    options : mapping, optional
        Reader options: ``utc_offset`` (hours the hourly file times are ahead of UTC),
        ``resolution`` (generic: auto/daily/hourly), ``pollutant`` (CNEMC type row).

    Returns
    -------
    daily : DataFrame
        ``station, date, value, n_valid`` (valid values only, sorted).
    stations : DataFrame
        ``station, lat, lon, elevation, role`` (+ ``name, city`` when known), stations with data.
    qc_table : DataFrame
        ``check, station, n, detail``.
    """
    rules = get_kind(kind).stations  # aggregation and QC rules of the kind
    if fmt not in READERS:
        raise ValueError(f"unknown station format {fmt!r}; registered: {sorted(READERS)}")
    q = {**QC_DEFAULTS, **dict(qc or {})}
    ev = dict(evaluation or {})
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if end < start:
        raise ValueError(f"station period end {end:%Y-%m-%d} is before start {start:%Y-%m-%d}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"station data {path} not found")
    table = Path(table) if table else None
    log = QCLog()
    opts = dict(options or {})
    req = ReadRequest(kind, path, table, start, end, int(utc_start_hour), opts, log)
    obs = READERS[fmt](req)
    log.enforce_losses(float(q["max_lost_fraction"]), f"{fmt} {path}")
    values = obs.values
    values.columns = values.columns.astype(str)
    stations = obs.stations.assign(station=obs.stations["station"].astype(str))
    logger.info(
        "%s %s: %d %s steps x %d stations read, %d valid values",
        fmt,
        path,
        len(values),
        "hourly" if obs.hourly else "daily",
        values.shape[1],
        int(values.notna().to_numpy().sum()),
    )

    stations = check_duplicate_stations(stations, log)
    stations, values = check_coordinates(stations, values, log)
    stations, values = check_inside_grid(stations, values, grid, log)
    values, n_valid = _daily_values(values, obs.hourly, rules, q, req.utc_start_hour, log)
    if rules.wet_median_key is not None:
        check_wet_median(values, float(q[rules.wet_median_key]), log)
    values, n_valid, stations = _keep_period(values, n_valid, stations, start, end, log)

    roles = assign_roles(
        stations["station"],
        ids=ev.get("ids") or (),
        count=int(ev.get("count", 0)),
        seed=seed,
        qc=log,
    )
    stations = stations.assign(role=stations["station"].map(roles))
    extra = [c for c in ("name", "city") if c in stations.columns]
    stations = stations[STATION_COLUMNS + extra].sort_values("station").reset_index(drop=True)
    daily = _to_long(values, n_valid)
    logger.info(
        "ingest done: %d station-days at %d stations (%d evaluation), %s..%s",
        len(daily),
        len(stations),
        int((stations["role"] == "evaluation").sum()),
        f"{start:%Y-%m-%d}",
        f"{end:%Y-%m-%d}",
    )
    return daily, stations, log.table()
