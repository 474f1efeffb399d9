"""Generic station data: a long CSV ``station, time, value`` plus a station table.

The data file (or every ``*.csv`` in a folder) has the columns ``station`` (or ``id``),
``time`` (or ``date``) and ``value``; the station table has ``station`` (or ``id``), ``lat``,
``lon`` and optionally ``elevation`` (or ``alt``/``elev``), ``name``, ``city``.  Daily data
give the product day in ``time``; hourly data give the END of the hour, in a time zone
``utc_offset`` hours ahead of UTC.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from gridfuse.stations.qc import QCLog

logger = logging.getLogger(__name__)

__all__ = ["read_station_table", "read_generic_csv", "infer_resolution"]

_ALIASES = {
    "station": ("station", "id", "site", "station_id"),
    "time": ("time", "date", "datetime"),
    "value": ("value",),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "long", "longitude"),
    "elevation": ("elevation", "alt", "elev", "altitude"),
}


def _pick(df: pd.DataFrame, key: str, path: Path, required: bool = True) -> str | None:
    low = {c.strip().lower(): c for c in df.columns}
    for name in _ALIASES.get(key, (key,)):
        if name in low:
            return low[name]
    if required:
        raise ValueError(
            f"{path}: expected a column {key!r} (any of {_ALIASES.get(key, (key,))}), "
            f"found {list(df.columns)[:10]}"
        )
    return None


def _read_csv(path: Path, **kw) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kw)
    except FileNotFoundError:
        raise FileNotFoundError(f"station file {path} not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"station file {path}: cannot parse as CSV ({err})") from None


def read_station_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a station table: ``station, lat, lon, elevation`` (+ ``name``, ``city``).

    Coordinates that are not numbers become NaN (the ingest removes and counts them);
    a missing elevation column gives NaN elevations.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"station table {path} not found")
    raw = _read_csv(path, dtype=str)
    out = pd.DataFrame({"station": raw[_pick(raw, "station", path)].astype(str).str.strip()})
    for key in ("lat", "lon"):
        out[key] = pd.to_numeric(raw[_pick(raw, key, path)], errors="coerce")
    col = _pick(raw, "elevation", path, required=False)
    out["elevation"] = pd.to_numeric(raw[col], errors="coerce") if col else np.nan
    for key in ("name", "city"):
        col = _pick(raw, key, path, required=False)
        if col:
            out[key] = raw[col].fillna("").astype(str)
    return out


def infer_resolution(times: pd.Series) -> str:
    """``"hourly"`` if any time has a non-zero hour or minute, else ``"daily"``."""
    t = pd.DatetimeIndex(times)
    return "hourly" if bool(((t.hour != 0) | (t.minute != 0)).any()) else "daily"


def read_generic_csv(
    path: str | os.PathLike,
    *,
    resolution: str = "auto",
    utc_offset: float = 0.0,
    qc: QCLog | None = None,
) -> tuple[pd.DataFrame, str]:
    """Read long ``station, time, value`` CSV data.

    Parameters
    ----------
    path : path
        A CSV file or a folder of ``*.csv`` files.
    resolution : {"auto", "daily", "hourly"}
        ``auto`` infers hourly data from times that are not midnight.
    utc_offset : float
        Hours the hourly times are ahead of UTC (ignored for daily data).
    qc : QCLog, optional
        Records ``duplicate`` (repeated station-time rows, first kept) and ``non_numeric``.

    Returns
    -------
    values : DataFrame
        Wide table: index = product day (daily) or END of the hour in UTC (hourly), one
        column per station.
    resolution : str
        ``"daily"`` or ``"hourly"``.
    """
    qc = qc if qc is not None else QCLog()
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            raise FileNotFoundError(f"generic stations: no *.csv files in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"generic stations: no file or folder {path}")
    parts = []
    for f in files:
        raw = _read_csv(f, dtype=str)
        cols = [_pick(raw, k, f) for k in ("station", "time", "value")]
        part = raw[cols].set_axis(["station", "time", "value"], axis=1)
        try:
            part["time"] = pd.to_datetime(part["time"])
        except (ValueError, TypeError) as err:
            raise ValueError(f"generic stations file {f}: unparseable time ({err})") from None
        text = part["value"].fillna("").str.strip()
        part["value"] = pd.to_numeric(text, errors="coerce")
        nonnum = ((text != "") & part["value"].isna()).to_numpy()
        qc.record_mask("non_numeric", part["station"], nonnum, f"{f.name}: non-numeric values")
        part["station"] = part["station"].astype(str).str.strip()
        parts.append(part)
    df = pd.concat(parts, ignore_index=True)
    if resolution not in ("auto", "daily", "hourly"):
        raise ValueError(f"resolution must be auto, daily or hourly, got {resolution!r}")
    if resolution == "auto":
        resolution = infer_resolution(df["time"])
    if resolution == "hourly":
        df["time"] = df["time"] - pd.Timedelta(hours=utc_offset)
    else:
        df["time"] = df["time"].dt.normalize()
    dups = df.duplicated(["station", "time"], keep="first").to_numpy()
    qc.record_mask("duplicate", df["station"], dups, "repeated station-time rows (first kept)")
    df = df[~dups]
    wide = df.pivot(index="time", columns="station", values="value").sort_index()
    wide.columns = wide.columns.astype(str)
    wide.columns.name = None
    logger.info(
        "read %d %s rows for %d stations from %d file(s)",
        len(df),
        resolution,
        wide.shape[1],
        len(files),
    )
    return wide, resolution
