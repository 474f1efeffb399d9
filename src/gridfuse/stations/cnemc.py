"""CNEMC air-quality stations: ``china_sites_YYYYMMDD.csv`` day files and the station list.

A day file (as redistributed by quotsoft.net) has the header ``date,hour,type,<codes...>``
and one row per (hour, type): ``date`` = YYYYMMDD, ``hour`` = 0..23 Beijing time, the value
being the mean of the hour ENDING at ``hour`` (so hour 0 of file D is 23:00-24:00 of D-1),
``type`` one of :data:`TYPES`; an empty cell is missing.  Lines end in CRLF and the last
line has no line break.  Gases were reported at 273 K until 2018-08-31 and at 298 K from
2018-09-01 on; :func:`harmonize_298k` converts the earlier values (x 273/298).

The station list (UTF-8) has the columns ``监测点编码,监测点名称,城市,经度,纬度[,对照点]``
(code, name, city, lon, lat, reference site Y/N); some coordinates are empty or ``-``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gridfuse.io import atomic_path
from gridfuse.stations.qc import QCLog

logger = logging.getLogger(__name__)

__all__ = [
    "TYPES",
    "FILE_PATTERN",
    "LIST_COLUMNS",
    "UNIT_CHANGE",
    "write_china_sites",
    "write_station_list",
    "read_station_list",
    "read_china_sites",
    "harmonize_298k",
]

TYPES = [
    "AQI",
    "PM2.5",
    "PM2.5_24h",
    "PM10",
    "PM10_24h",
    "SO2",
    "SO2_24h",
    "NO2",
    "NO2_24h",
    "O3",
    "O3_24h",
    "O3_8h",
    "O3_8h_24h",
    "CO",
    "CO_24h",
]
FILE_PATTERN = re.compile(r"china_sites_(\d{8})\.csv$")
LIST_COLUMNS = ["监测点编码", "监测点名称", "城市", "经度", "纬度", "对照点"]
UNIT_CHANGE = pd.Timestamp("2018-09-01")
_ENGLISH = {"station": 0, "code": 0, "name": 1, "city": 2, "lon": 3, "lat": 4, "reference": 5}


def _fmt(v: float) -> str:
    """Shortest plain decimal (no exponent): 11.0 -> '11', 0.55 -> '0.55', NaN -> ''."""
    if not np.isfinite(v):
        return ""
    text = repr(float(v))
    if "e" in text or "E" in text:
        return np.format_float_positional(v, trim="-")
    return text[:-2] if text.endswith(".0") else text


def _fmt_array(values: np.ndarray) -> np.ndarray:
    """Vectorized :func:`_fmt` over a float array (object array of str)."""
    v = np.asarray(values, dtype="f8")
    out = np.full(v.shape, "", dtype=object)
    fin = np.isfinite(v)
    whole = fin & (np.abs(v) < 1e15)
    whole[whole] = v[whole] == np.floor(v[whole])
    out[whole] = v[whole].astype("i8").astype(str)
    rest = fin & ~whole
    out[rest] = [_fmt(x) for x in v[rest]]
    return out


# --------------------------------------------------------------------------------------
# writers


def write_china_sites(hourly: pd.DataFrame, folder: str | os.PathLike) -> list[Path]:
    """Write hourly concentrations as ``china_sites_YYYYMMDD.csv`` day files.

    Parameters
    ----------
    hourly : DataFrame
        Long table ``station, time, type, value``; ``time`` is the END of the hour in
        Beijing time (naive), so a value for 23:00-24:00 on D has time D+1 00:00 and goes
        to hour 0 of file D+1.  NaN values are written as empty cells.
    folder : path
        Output folder (created).

    Returns
    -------
    list of Path
        One file per day with data, each with 24 hours x the types present (in the real
        files' order) and one column per station code (sorted), CRLF line ends.
    """
    missing = {"station", "time", "type", "value"} - set(hourly.columns)
    if missing:
        raise ValueError(f"write_china_sites: hourly lacks columns {sorted(missing)}")
    time = pd.DatetimeIndex(pd.to_datetime(hourly["time"]))
    value = pd.to_numeric(hourly["value"], errors="raise").to_numpy(dtype="f8")
    if time.tz is not None:
        raise ValueError("write_china_sites: time must be naive Beijing time, got tz-aware values")
    off = time != time.floor("h")
    if off.any():
        raise ValueError(
            f"write_china_sites: times must be whole hours; first offender {time[off][0]}"
        )
    s_code, codes = pd.factorize(hourly["station"].astype(str), sort=True)
    codes = [str(c) for c in codes]
    bad = [c for c in codes if not c or "," in c]
    if bad:
        raise ValueError(f"write_china_sites: invalid station codes {bad[:5]}")
    t_raw, t_uni = pd.factorize(hourly["type"].astype(str))
    present = {str(t) for t in t_uni}
    types = [t for t in TYPES if t in present] + sorted(present - set(TYPES))
    t_code = pd.Index(types).get_indexer([str(t) for t in t_uni])[t_raw]
    d_code, days = pd.factorize(time.normalize(), sort=True)
    cube = np.full((len(days), 24, len(types), len(codes)), np.nan)
    flat = np.ravel_multi_index((d_code, time.hour, t_code, s_code), cube.shape)
    if len(flat) and np.bincount(flat, minlength=cube.size).max() > 1:
        raise ValueError("write_china_sites: repeated (station, time, type) rows")
    cube.flat[flat] = value
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join(["date", "hour", "type", *codes])
    written = []
    for day, block in zip(days, cube, strict=True):
        ymd = f"{day:%Y%m%d}"
        cells = _fmt_array(block.reshape(24 * len(types), len(codes)))
        lines = [header]
        for i, row in enumerate(cells):
            lines.append(",".join([ymd, str(i // len(types)), types[i % len(types)], *row]))
        path = folder / f"china_sites_{ymd}.csv"
        with atomic_path(path) as tmp:
            tmp.write_bytes("\r\n".join(lines).encode("utf-8"))
        written.append(path)
    logger.info(
        "wrote %d china_sites files (%d stations, types %s) to %s",
        len(written),
        len(codes),
        types,
        folder,
    )
    return written


def write_station_list(stations: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a CNEMC station list (UTF-8): ``监测点编码,监测点名称,城市,经度,纬度,对照点``.

    Parameters
    ----------
    stations : DataFrame
        ``station, lon, lat`` and optionally ``name``, ``city``, ``reference`` (Y/N or bool;
        default N).  NaN coordinates are written as empty cells.
    path : path
        File to write.
    """
    missing = {"station", "lon", "lat"} - set(stations.columns)
    if missing:
        raise ValueError(f"write_station_list: stations lack columns {sorted(missing)}")
    n = len(stations)
    ref = stations["reference"] if "reference" in stations else pd.Series(["N"] * n)
    ref = ["Y" if (r is True or str(r).upper() in ("Y", "TRUE", "1")) else "N" for r in ref]
    out = pd.DataFrame(
        {
            LIST_COLUMNS[0]: stations["station"].astype(str).to_numpy(),
            LIST_COLUMNS[1]: (stations["name"] if "name" in stations else stations["station"])
            .astype(str)
            .to_numpy(),
            LIST_COLUMNS[2]: (stations["city"] if "city" in stations else pd.Series([""] * n))
            .fillna("")
            .astype(str)
            .to_numpy(),
            LIST_COLUMNS[3]: [_fmt(v) for v in stations["lon"].to_numpy(dtype="f8")],
            LIST_COLUMNS[4]: [_fmt(v) for v in stations["lat"].to_numpy(dtype="f8")],
            LIST_COLUMNS[5]: ref,
        }
    )
    path = Path(path)
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")
    logger.info("wrote station list with %d stations to %s", n, path)
    return path


# --------------------------------------------------------------------------------------
# readers


def _decode(path: Path, data: bytes) -> str:
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise ValueError(f"{path}: neither UTF-8 nor GB18030 text")


def read_station_list(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CNEMC station list.

    Returns
    -------
    DataFrame
        ``station, name, city, lon, lat`` (+ ``reference`` when present); coordinates that
        are empty or not numbers (``-``) are NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CNEMC station list {path} not found")
    from io import StringIO

    try:
        raw = pd.read_csv(StringIO(_decode(path, path.read_bytes())), dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"CNEMC station list {path}: cannot parse ({err})") from None
    cols = [c.strip() for c in raw.columns]
    if cols[:5] == LIST_COLUMNS[:5]:
        pos = {"station": 0, "name": 1, "city": 2, "lon": 3, "lat": 4}
        if len(cols) > 5 and cols[5] == LIST_COLUMNS[5]:
            pos["reference"] = 5
    elif {"station", "lon", "lat"} <= {c.lower() for c in cols} or {"code", "lon", "lat"} <= {
        c.lower() for c in cols
    }:
        low = [c.lower() for c in cols]
        pos = {k: low.index(k) for k in ("name", "city", "lon", "lat", "reference") if k in low}
        pos["station"] = low.index("station") if "station" in low else low.index("code")
    else:
        raise ValueError(
            f"CNEMC station list {path}: expected columns {LIST_COLUMNS[:5]} (or station, lon, "
            f"lat), found {cols[:8]}"
        )
    out = pd.DataFrame({"station": raw.iloc[:, pos["station"]].astype(str).str.strip()})
    for key in ("name", "city"):
        out[key] = raw.iloc[:, pos[key]].fillna("").astype(str) if key in pos else ""
    for key in ("lon", "lat"):
        out[key] = pd.to_numeric(raw.iloc[:, pos[key]].str.strip(), errors="coerce")
    if "reference" in pos:
        out["reference"] = raw.iloc[:, pos["reference"]].fillna("").astype(str)
    logger.info(
        "read %d stations from %s (%d without coordinates)",
        len(out),
        path,
        int(out[["lon", "lat"]].isna().any(axis=1).sum()),
    )
    return out


def _day_files(folder: Path) -> dict[pd.Timestamp, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"CNEMC: folder {folder} not found")
    out = {}
    for p in sorted(folder.iterdir()):
        m = FILE_PATTERN.search(p.name)
        if m and p.is_file():
            try:
                out[pd.Timestamp(m.group(1))] = p
            except ValueError:
                raise ValueError(f"CNEMC: file name {p} has an invalid date") from None
    return out


def _parse_day(path: Path, day: pd.Timestamp, pollutant: str, qc: QCLog) -> pd.DataFrame | None:
    """One day file -> (hours present, stations) frame for ``pollutant``; None if no hours."""
    data = path.read_bytes()
    if not data.strip():
        qc.record("truncated_file", "", 24, f"{path.name}: empty file; skipped")
        qc.lose(day.year, path.name, 24)
        return None
    lines = _decode(path, data).splitlines()
    header = lines[0].split(",")
    if header[:3] != ["date", "hour", "type"]:
        raise ValueError(
            f"CNEMC file {path}: expected a header starting 'date,hour,type', found {lines[0][:60]!r}"
        )
    codes = [c.strip() for c in header[3:]]
    ncol = len(header)
    ymd = f"{day:%Y%m%d}"
    rows: dict[int, list[str]] = {}
    partial = garbage = repeated = 0
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) != ncol:
            if line.strip():
                partial += 1
            continue
        if fields[0] != ymd or not fields[1].isdigit() or not 0 <= int(fields[1]) <= 23:
            garbage += 1
            continue
        if fields[2] != pollutant:
            continue
        hour = int(fields[1])
        if hour in rows:
            repeated += 1
            continue
        rows[hour] = fields[3:]
    if partial:
        qc.record("partial_row", "", partial, f"{path.name}: rows with a wrong field count dropped")
    if garbage:
        qc.record("garbage_row", "", garbage, f"{path.name}: rows with a bad date/hour dropped")
    if repeated:
        qc.record(
            "duplicate", "", repeated, f"{path.name}: repeated {pollutant} hours (first kept)"
        )
    if len(rows) < 24:
        qc.record(
            "truncated_file",
            "",
            24 - len(rows),
            f"{path.name}: {len(rows)} of 24 {pollutant} hours present (present hours kept)",
        )
        qc.lose(day.year, path.name, 24 - len(rows))
    if not rows:
        return None
    hours = sorted(rows)
    cells = np.array([rows[h] for h in hours], dtype=object)
    text = pd.Series(cells.ravel()).str.strip()
    num = pd.to_numeric(text, errors="coerce")
    nonnum = (text != "") & num.isna()
    if nonnum.any():
        qc.record(
            "non_numeric", "", int(nonnum.sum()), f"{path.name}: non-numeric cells set missing"
        )
    values = num.to_numpy(dtype="f8").reshape(cells.shape)
    seen: dict[str, int] = {}
    keep = []
    for i, c in enumerate(codes):
        if c in seen:
            qc.record(
                "duplicated_column", c, 1, f"{path.name}: station column repeated (first kept)"
            )
            continue
        seen[c] = i
        keep.append(i)
    index = pd.DatetimeIndex([day + pd.Timedelta(hours=h) for h in hours], name="time")
    return pd.DataFrame(values[:, keep], index=index, columns=[codes[i] for i in keep])


def read_china_sites(
    folder: str | os.PathLike,
    *,
    pollutant: str = "SO2",
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
    qc: QCLog | None = None,
) -> pd.DataFrame:
    """Read one pollutant's hourly values from ``china_sites_YYYYMMDD.csv`` files.

    Parameters
    ----------
    folder : path
        Folder holding the day files.
    pollutant : str
        The ``type`` rows to read (``SO2``, ``PM2.5``, ...).
    start, end : date-like, optional
        File dates to read (inclusive); a missing file in this range is recorded
        (``missing_file``) and skipped.
    qc : QCLog, optional
        Receives the file-level decisions: ``missing_file``, ``truncated_file`` (fewer than 24
        hours; the hours present are kept), ``partial_row``, ``garbage_row``, ``duplicate``,
        ``duplicated_column`` (repeated station column; first kept), ``non_numeric``.

    Returns
    -------
    DataFrame
        Index ``time`` = END of the hour in Beijing time (naive); one column per station code.
    """
    qc = qc if qc is not None else QCLog()
    folder = Path(folder)
    files = _day_files(folder)
    if not files:
        raise FileNotFoundError(f"CNEMC: no china_sites_YYYYMMDD.csv files in {folder}")
    lo = pd.Timestamp(start) if start is not None else min(files)
    hi = pd.Timestamp(end) if end is not None else max(files)
    wanted = pd.date_range(lo.normalize(), hi.normalize(), freq="D")
    absent = [d for d in wanted if d not in files]
    for d in wanted:
        qc.expect(d.year, 24, f"{pollutant} file-hours")
    for d in absent:
        qc.record(
            "missing_file", "", 24, f"china_sites_{d:%Y%m%d}.csv absent; its hours are missing"
        )
        qc.lose(d.year, f"china_sites_{d:%Y%m%d}.csv", 24)
    qc.summary("missing_file", len(absent), f"day files absent in {lo:%Y-%m-%d}..{hi:%Y-%m-%d}")
    frames = [
        f
        for d in wanted
        if d in files and (f := _parse_day(files[d], d, pollutant, qc)) is not None
    ]
    for check in (
        "truncated_file",
        "partial_row",
        "garbage_row",
        "duplicated_column",
        "non_numeric",
    ):
        qc.summary(check, qc.n_rows(check), f"day files / columns with {check.replace('_', ' ')}")
    if not frames:
        raise ValueError(
            f"CNEMC: no {pollutant} rows in the files of {folder} for {lo:%Y-%m-%d}..{hi:%Y-%m-%d}"
        )
    wide = pd.concat(frames, axis=0, join="outer", sort=False)
    wide = wide.reindex(columns=sorted(wide.columns))
    logger.info(
        "read %s from %d day files in %s: %d hours x %d stations, %d valid values",
        pollutant,
        len(frames),
        folder,
        len(wide),
        wide.shape[1],
        int(wide.notna().to_numpy().sum()),
    )
    return wide


def harmonize_298k(
    wide: pd.DataFrame, qc: QCLog | None = None, change: pd.Timestamp | str = UNIT_CHANGE
) -> pd.DataFrame:
    """Convert gas concentrations reported at 273 K (before ``change``) to 298 K.

    Parameters
    ----------
    wide : DataFrame
        Index = end of the hour (or the day) in the time frame of ``change``; values in ug/m3.
    qc : QCLog, optional
        Records the number of converted values as ``harmonize_298k``.
    change : date-like
        First instant reported at 298 K: 2018-09-01 00:00 Beijing time (file day 2018-09-01),
        i.e. 2018-08-31 16:00 for an index in UTC.  Rows before it are multiplied by 273/298.
    """
    before = wide.index < pd.Timestamp(change)
    out = wide.copy()
    out.loc[before] = out.loc[before] * (273.0 / 298.0)
    n = int(out.loc[before].notna().to_numpy().sum())
    if qc is not None:
        qc.summary(
            "harmonize_298k", n, f"values before {pd.Timestamp(change)} x 273/298 (273 K -> 298 K)"
        )
    return out
