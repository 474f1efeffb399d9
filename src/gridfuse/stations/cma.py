"""China Meteorological Administration (CMA) station precipitation: V3.0 daily and hourly CSV.

Daily records follow ``SURF_CLI_CHN_MUL_DAY`` V3.0, one whitespace-separated monthly file
``SURF_CLI_CHN_MUL_DAY-PRE-13011-YYYYMM.TXT`` with one row per station-day::

    station lat lon elevation year month day p20_08 p08_20 p20_20 qc20_08 qc08_20 qc20_20

``lat``/``lon`` are degrees x 100 + minutes (``3637`` = 36 deg 37 min), ``elevation`` is in
0.1 m (plus 100000 when estimated), the three precipitation columns are in 0.1 mm with the
special codes 32700 (trace, < 0.1 mm, read as 0), 32766 (missing) and 30xxx / 31xxx / 32xxx
(amount xxx flagged with a weather type; the flag is stripped).  QC codes: 0 correct,
1 suspicious, 2 wrong, 8 missing, 9 not observed.  Record D covers 20:00 (D-1) to 20:00 (D)
Beijing time, which is the product day D for ``utc_start_hour`` 12.

The hourly CSV is the CMADaaS ``SURF_CHN_MUL_HOR`` layout (columns ``Station_Id_C, Lat, Lon,
Alti, Year, Mon, Day, Hour, PRE_1h``): ``PRE_1h`` in mm for the hour ending at ``Hour``, with
999990 = trace and 999998 / 999999 = not observed / missing.
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
    "DAILY_PATTERN",
    "TRACE",
    "MISSING",
    "decode_precip",
    "degmin_to_deg",
    "deg_to_degmin",
    "write_cma_daily",
    "read_cma_daily",
    "read_cma_hourly",
]

DAILY_PATTERN = re.compile(r"SURF_CLI_CHN_MUL_DAY-PRE-13011-(\d{4})(\d{2})\.TXT$", re.IGNORECASE)
TRACE = 32700
MISSING = 32766
_NCOL = 13
_COLUMNS = [
    "station",
    "lat",
    "lon",
    "elev",
    "year",
    "month",
    "day",
    "p2008",
    "p0820",
    "p2020",
    "qc2008",
    "qc0820",
    "qc2020",
]
_BAD_QC = (2, 8, 9)
_HOURLY_COLUMNS = ["Station_Id_C", "Lat", "Lon", "Alti", "Year", "Mon", "Day", "Hour", "PRE_1h"]


# --------------------------------------------------------------------------------------
# codes


def decode_precip(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode V3.0 precipitation codes (0.1 mm) to mm.

    Parameters
    ----------
    codes : array of int
        Raw integer codes.

    Returns
    -------
    mm : float array
        Precipitation in mm; trace (32700) is 0, missing (32766) is NaN, 30xxx / 31xxx /
        32xxx (xxx < 700) carry the amount xxx (0.1 mm).
    unknown : bool array
        Codes that are none of these (negative, or >= 30000 but not a known pattern); their
        value is NaN.
    """
    c = np.asarray(codes, dtype="f8")
    mm = np.full(c.shape, np.nan)
    plain = (c >= 0) & (c < 30000)
    mm[plain] = c[plain] / 10.0
    mm[c == TRACE] = 0.0
    flagged = (c >= 30000) & (c < 33000) & (np.mod(c, 1000) < 700)
    mm[flagged] = np.mod(c[flagged], 1000) / 10.0
    known = plain | flagged | (c == TRACE) | (c == MISSING) | np.isnan(c)
    return mm, ~known


def degmin_to_deg(v) -> np.ndarray:
    """Degrees x 100 + minutes (e.g. 3637) to decimal degrees (36.6167)."""
    v = np.asarray(v, dtype="f8")
    sign = np.sign(v)
    a = np.abs(v)
    return sign * (np.floor(a / 100.0) + np.mod(a, 100.0) / 60.0)


def deg_to_degmin(v) -> np.ndarray:
    """Decimal degrees to integer degrees x 100 + minutes (minutes rounded, carried at 60)."""
    v = np.asarray(v, dtype="f8")
    sign = np.where(v < 0, -1, 1)
    total_min = np.rint(np.abs(v) * 60.0).astype("i8")
    return (sign * ((total_min // 60) * 100 + total_min % 60)).astype("i8")


def _encode_tenths(mm: np.ndarray) -> np.ndarray:
    """mm to 0.1 mm codes: NaN -> 32766, (0, 0.05) -> 32700 (trace), else rounded tenths."""
    mm = np.asarray(mm, dtype="f8")
    tenths = np.rint(np.where(np.isfinite(mm), mm, 0.0) * 10.0).astype("i8")
    out = tenths.copy()
    out[(mm > 0) & (tenths == 0)] = TRACE
    out[~np.isfinite(mm)] = MISSING
    return out


# --------------------------------------------------------------------------------------
# daily V3.0 writer


def write_cma_daily(
    values: pd.DataFrame, stations: pd.DataFrame, folder: str | os.PathLike
) -> list[Path]:
    """Write daily precipitation as monthly V3.0 ``SURF_CLI_CHN_MUL_DAY-PRE-13011`` files.

    Parameters
    ----------
    values : DataFrame
        Long table ``station, date, value``: mm for the CMA 20-20 day ending on ``date``;
        NaN = missing (written as 32766 with QC code 8).  Positive amounts below 0.05 mm are
        written as trace (32700).
    stations : DataFrame
        ``station, lat, lon, elevation`` in decimal degrees and m (elevation NaN -> 999999).
    folder : path
        Output folder (created).

    Returns
    -------
    list of Path
        The monthly files written, in date order.

    Notes
    -----
    The 20-20 total is split between the 20-08 and 08-20 half days as 45 % / 55 % (of the
    0.1 mm count, so the halves add up to the total exactly); a trace day has its trace in
    the 08-20 half.
    """
    missing = {"station", "date", "value"} - set(values.columns)
    if missing:
        raise ValueError(f"write_cma_daily: values lack columns {sorted(missing)}")
    missing = {"station", "lat", "lon", "elevation"} - set(stations.columns)
    if missing:
        raise ValueError(f"write_cma_daily: stations lack columns {sorted(missing)}")
    st = stations.assign(station=stations["station"].astype(str)).drop_duplicates("station")
    st = st.set_index("station")
    v = values.assign(
        station=values["station"].astype(str), date=pd.to_datetime(values["date"])
    ).sort_values(["station", "date"], kind="stable")
    unknown = sorted(set(v["station"]) - set(st.index))
    if unknown:
        raise ValueError(f"write_cma_daily: stations {unknown[:5]} have values but no coordinates")
    bad_ids = [s for s in st.index if not s or re.search(r"\s", s)]
    if bad_ids:
        raise ValueError(
            f"write_cma_daily: station ids must be non-empty without spaces: {bad_ids}"
        )

    total = _encode_tenths(v["value"].to_numpy())
    plain = (total != TRACE) & (total != MISSING)
    night = np.where(plain, (total * 45) // 100, np.where(total == TRACE, 0, MISSING))
    day = np.where(plain, total - night, total)
    qc = np.where(total == MISSING, 8, 0)
    meta = st.loc[v["station"]]
    elev = meta["elevation"].to_numpy(dtype="f8")
    table = pd.DataFrame(
        {
            "station": v["station"].to_numpy(),
            "lat": deg_to_degmin(meta["lat"].to_numpy()),
            "lon": deg_to_degmin(meta["lon"].to_numpy()),
            "elev": np.where(np.isfinite(elev), np.rint(np.nan_to_num(elev) * 10), 999999).astype(
                "i8"
            ),
            "year": v["date"].dt.year.to_numpy(),
            "month": v["date"].dt.month.to_numpy(),
            "day": v["date"].dt.day.to_numpy(),
            "p2008": night,
            "p0820": day,
            "p2020": total,
            "qc": qc,
        }
    )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (year, month), part in table.groupby(["year", "month"], sort=True):
        lines = [
            f"{r.station:>5} {r.lat:>5d} {r.lon:>5d} {r.elev:>6d} {r.year:>4d} {r.month:>2d} "
            f"{r.day:>2d} {r.p2008:>5d} {r.p0820:>5d} {r.p2020:>5d} {r.qc} {r.qc} {r.qc}"
            for r in part.itertuples(index=False)
        ]
        path = folder / f"SURF_CLI_CHN_MUL_DAY-PRE-13011-{year:04d}{month:02d}.TXT"
        with atomic_path(path) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="ascii")
        written.append(path)
    logger.info(
        "wrote %d CMA daily files (%d station-days, %d stations) to %s",
        len(written),
        len(table),
        table["station"].nunique(),
        folder,
    )
    return written


# --------------------------------------------------------------------------------------
# daily V3.0 reader


def _daily_files(path: Path, qc: QCLog | None = None) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"CMA daily: no file or folder {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file() and DAILY_PATTERN.search(p.name))
    odd = sorted(
        p.name
        for p in path.rglob("SURF_CLI_CHN_MUL_DAY*")
        if p.is_file() and not DAILY_PATTERN.search(p.name)
    )
    if qc is not None:
        for name in odd:
            qc.record(
                "unmatched_file",
                "",
                1,
                f"{name}: not SURF_CLI_CHN_MUL_DAY-PRE-13011-YYYYMM.TXT; not read",
            )
        qc.summary("unmatched_file", len(odd), "CMA-like file names not read (e.g. a 2-digit year)")
    if not files:
        raise FileNotFoundError(
            f"CMA daily: no SURF_CLI_CHN_MUL_DAY-PRE-13011-YYYYMM.TXT files in {path}"
        )
    return files


def _month_of(path: Path) -> tuple[int, int] | None:
    m = DAILY_PATTERN.search(path.name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _parse_daily_file(path: Path, qc: QCLog | None = None) -> pd.DataFrame:
    """Rows of one monthly file; a short last line (a cut file) and rows dated outside the
    file's month (e.g. a year written ``19``) are dropped and counted."""
    qc = qc if qc is not None else QCLog()
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError as err:
        raise ValueError(f"CMA daily file {path}: not ASCII text ({err})") from None
    rows = []
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1) if ln.split()]
    for k, (i, line) in enumerate(lines):
        parts = line.split()
        if len(parts) != _NCOL:
            if k == len(lines) - 1 and len(parts) < _NCOL and not text.endswith("\n"):
                qc.record("partial_row", "", 1, f"{path.name}: last line cut ({len(parts)} fields)")
                continue
            raise ValueError(
                f"CMA daily file {path}, line {i}: expected {_NCOL} whitespace-separated "
                f"columns (station lat lon elevation year month day 20-08 08-20 20-20 + 3 QC), "
                f"found {len(parts)}: {line[:80]!r}"
            )
        rows.append(parts)
    if not rows:
        raise ValueError(f"CMA daily file {path}: empty (no station-day rows)")
    df = pd.DataFrame(rows, columns=_COLUMNS)
    num = df.columns[1:]
    conv = df[num].apply(pd.to_numeric, errors="coerce")
    bad = conv.isna().any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"CMA daily file {path}: {int(bad.sum())} row(s) with non-numeric fields; first: "
            f"{' '.join(rows[i])!r}"
        )
    df[num] = conv.astype("i8")
    ym = _month_of(path)
    if ym is not None:
        off = ((df["year"] != ym[0]) | (df["month"] != ym[1])).to_numpy()
        if off.any():
            first = df.loc[off].iloc[0]
            qc.record(
                "date_mismatch",
                "",
                int(off.sum()),
                f"{path.name}: rows dated outside {ym[0]:04d}-{ym[1]:02d} dropped (first: "
                f"year {first['year']} month {first['month']} day {first['day']})",
            )
            df = df[~off].reset_index(drop=True)
            if df.empty:
                return df.assign(date=pd.Series([], dtype="datetime64[ns]"))
    try:
        df["date"] = pd.to_datetime(df[["year", "month", "day"]])
    except (ValueError, OverflowError) as err:
        raise ValueError(f"CMA daily file {path}: invalid date ({err})") from None
    return df


def _record_month_losses(
    df: pd.DataFrame, months: list[tuple[int, int]], files: dict, start, end, qc: QCLog
) -> None:
    """Expected station-days per year, and those lost to absent or incomplete month files.

    A station is expected in a month when it reports in that month, or in both neighbouring
    months of the period (one at the period's ends): a file cut short, or absent, loses the
    days of stations reporting around it, while stations that open or close are not counted
    as losses.  Its days inside the month (within the period) that no row holds are lost.
    """
    if df.empty:
        return
    seen = {k: set(g) for k, g in df.groupby(["year", "month"])["station"]}
    rows = df.groupby(["year", "month", "station"]).size()
    for i, (y, m) in enumerate(months):
        first = max(pd.Timestamp(year=y, month=m, day=1), start)
        last = min(pd.Timestamp(year=y, month=m, day=1) + pd.offsets.MonthEnd(0), end)
        n_days = (last - first).days + 1
        if n_days <= 0:
            continue
        prev = seen.get(months[i - 1], None) if i > 0 else None
        nxt = seen.get(months[i + 1], None) if i + 1 < len(months) else None
        around = [x for x in (prev, nxt) if x is not None]
        if i == 0 or i + 1 == len(months):
            neighbours = set.union(set(), *around)
        else:
            neighbours = set.intersection(*around) if len(around) == 2 else set()
        here = seen.get((y, m), set())
        expected_st = here | neighbours
        expected = len(expected_st) * n_days
        if expected == 0:
            continue
        qc.expect(y, expected, "station-days")
        name = f"SURF_CLI_CHN_MUL_DAY-PRE-13011-{y:04d}{m:02d}.TXT"
        if (y, m) not in files:
            qc.record("missing_file", "", expected, f"{name} absent; its station-days are missing")
            qc.lose(y, name, expected)
            continue
        have = sum(int(rows.get((y, m, st), 0)) for st in expected_st)
        short = expected - have
        if short > 0:
            qc.record(
                "incomplete_month",
                "",
                short,
                f"{files[(y, m)].name}: {have} of {expected} station-days of the "
                f"{len(expected_st)} stations expected present",
            )
            qc.lose(y, files[(y, m)].name, short)


def read_cma_daily(
    path: str | os.PathLike,
    *,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
    qc: QCLog | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read V3.0 daily precipitation files.

    Parameters
    ----------
    path : path
        A folder (searched recursively) or one file.
    start, end : date-like, optional
        Keep only records in ``[start, end]``; files of other months are not opened.
    qc : QCLog, optional
        Records decoding decisions (unknown codes, QC-flagged values, 20-20 filled from the
        half days).

    Returns
    -------
    values : DataFrame
        Wide table, index ``date`` (record day), one float column (mm) per station.
    stations : DataFrame
        ``station, lat, lon, elevation`` (the last position reported in the period).
    """
    qc = qc if qc is not None else QCLog()
    start = pd.Timestamp(start) if start is not None else None
    end = pd.Timestamp(end) if end is not None else None
    files = _files_in_period(_daily_files(Path(path), qc), start, end)
    if not files:
        raise FileNotFoundError(f"CMA daily: no monthly files in {path} cover {start}..{end}")
    df = pd.concat([_parse_daily_file(f, qc) for f in files], ignore_index=True)
    if start is not None:
        df = df[df["date"] >= start]
    if end is not None:
        df = df[df["date"] <= end]
    logger.info("read %d CMA daily rows from %d files", len(df), len(files))
    if df.empty:
        raise ValueError(
            f"CMA daily: no station-day row of {start}..{end} in the {len(files)} file(s) "
            f"under {path} (rows dated outside their file's month: "
            f"{qc.total('date_mismatch') or qc.n_rows('date_mismatch')})"
        )
    _record_file_losses(df, files, start, end, qc)
    df = df.assign(value=_decoded_totals(df, qc))
    dups = df.duplicated(["station", "date"], keep="first").to_numpy()
    qc.record_mask("duplicate", df["station"], dups, "repeated station-day rows (first kept)")
    df = df[~dups]
    wide = df.pivot(index="date", columns="station", values="value").sort_index()
    wide.columns = wide.columns.astype(str)
    wide.columns.name = None
    return wide, _station_table(df)


def _files_in_period(files: list[Path], start, end) -> list[Path]:
    """The monthly files whose month overlaps ``start..end`` (names without a month kept)."""
    if start is None and end is None:
        return files
    keep = []
    for f in files:
        ym = _month_of(f)
        if ym is None:
            keep.append(f)
            continue
        first = pd.Timestamp(year=ym[0], month=ym[1], day=1)
        if (end is None or first <= end) and (
            start is None or first + pd.offsets.MonthEnd(0) >= start
        ):
            keep.append(f)
    return keep


def _record_file_losses(df: pd.DataFrame, files: list[Path], start, end, qc: QCLog) -> None:
    """Summaries of the file-level decisions and the per-year losses of absent or short
    monthly files (:func:`_record_month_losses`)."""
    for check in ("partial_row", "date_mismatch"):
        qc.summary(check, qc.n_rows(check), f"files with {check.replace('_', ' ')}s")
    by_month = {_month_of(f): f for f in files if _month_of(f) is not None}
    lo = start if start is not None else df["date"].min()
    hi = end if end is not None else df["date"].max()
    months = [(p.year, p.month) for p in pd.period_range(lo, hi, freq="M")]
    _record_month_losses(df.drop_duplicates(["station", "date"]), months, by_month, lo, hi, qc)
    qc.summary(
        "missing_file", qc.n_rows("missing_file"), f"monthly files absent in {lo:%Y-%m}..{hi:%Y-%m}"
    )
    qc.summary(
        "incomplete_month", qc.n_rows("incomplete_month"), "monthly files lacking station-days"
    )


def _decoded_totals(df: pd.DataFrame, qc: QCLog) -> np.ndarray:
    """20-20 totals (mm) from the codes: unknown codes and flagged values missing (counted),
    a missing total filled from the two half days where both are valid."""
    total, unknown = decode_precip(df["p2020"].to_numpy())
    night, _ = decode_precip(df["p2008"].to_numpy())
    day, _ = decode_precip(df["p0820"].to_numpy())
    qc.record_mask(
        "unknown_code", df["station"], unknown, "20-20 codes not in the V3.0 table set missing"
    )
    absent = (df["p2020"].to_numpy() == MISSING) | df["qc2020"].isin((8, 9)).to_numpy()
    flag = df["qc2020"].isin(_BAD_QC).to_numpy() & np.isfinite(total)
    qc.record_mask(
        "cma_qc_flag",
        df["station"],
        flag,
        "20-20 value flagged wrong/missing (QC 2/8/9) set missing",
    )
    total[flag] = np.nan
    halves_ok = (
        np.isfinite(night)
        & np.isfinite(day)
        & ~df["qc2008"].isin(_BAD_QC).to_numpy()
        & ~df["qc0820"].isin(_BAD_QC).to_numpy()
    )
    fill = absent & halves_ok
    qc.record_mask("filled_from_halves", df["station"], fill, "missing 20-20 total = 20-08 + 08-20")
    total[fill] = night[fill] + day[fill]
    return total


def _station_table(df: pd.DataFrame) -> pd.DataFrame:
    """``station, lat, lon, elevation`` of the last position each station reported."""
    last = df.sort_values("date", kind="stable").groupby("station").last()
    elev = last["elev"].to_numpy(dtype="f8")
    elev = np.where(elev >= 999990, np.nan, np.where(elev >= 100000, elev - 100000, elev)) / 10.0
    moved = df.groupby("station")[["lat", "lon"]].nunique().max(axis=1)
    moved = moved[moved > 1]
    if len(moved):
        logger.info("%d station(s) moved during the period; latest position kept", len(moved))
    return pd.DataFrame(
        {
            "station": last.index.astype(str),
            "lat": degmin_to_deg(last["lat"].to_numpy()),
            "lon": degmin_to_deg(last["lon"].to_numpy()),
            "elevation": elev,
        }
    )


# --------------------------------------------------------------------------------------
# hourly (CMADaaS) reader


def read_cma_hourly(
    path: str | os.PathLike,
    *,
    utc_offset: float = 0.0,
    qc: QCLog | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read CMADaaS-style hourly precipitation CSV files.

    Parameters
    ----------
    path : path
        One CSV file or a folder of ``*.csv`` / ``*.txt`` files with the columns
        ``Station_Id_C, Lat, Lon, Alti, Year, Mon, Day, Hour, PRE_1h`` (comma or
        whitespace separated).
    utc_offset : float
        Hours the file times are ahead of UTC (0: UTC, as CMADaaS delivers; 8: Beijing).
    qc : QCLog, optional
        Records decoding decisions.

    Returns
    -------
    values : DataFrame
        Wide table, index = end of the hour in UTC, one float column (mm) per station.
    stations : DataFrame
        ``station, lat, lon, elevation``.
    """
    qc = qc if qc is not None else QCLog()
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".csv", ".txt"))
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"CMA hourly: no file or folder {path}")
    if not files:
        raise FileNotFoundError(f"CMA hourly: no .csv/.txt files in {path}")
    parts = []
    for f in files:
        try:
            df = pd.read_csv(f, sep=None, engine="python", dtype={"Station_Id_C": str})
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
            raise ValueError(f"CMA hourly file {f}: cannot parse ({err})") from None
        missing = set(_HOURLY_COLUMNS) - set(df.columns)
        if missing:
            raise ValueError(
                f"CMA hourly file {f}: expected columns {_HOURLY_COLUMNS}, missing {sorted(missing)}"
            )
        num = df[_HOURLY_COLUMNS[1:]].apply(pd.to_numeric, errors="coerce")
        bad = num[["Year", "Mon", "Day", "Hour"]].isna().any(axis=1)
        if bad.any():
            raise ValueError(
                f"CMA hourly file {f}: {int(bad.sum())} row(s) with a non-numeric time"
            )
        num.insert(0, "station", df["Station_Id_C"].astype(str).str.strip())
        num["file"] = str(f)
        parts.append(num)
    df = pd.concat(parts, ignore_index=True)
    time = (
        pd.to_datetime(pd.DataFrame({"year": df["Year"], "month": df["Mon"], "day": df["Day"]}))
        + pd.to_timedelta(df["Hour"], unit="h")
        - pd.Timedelta(hours=utc_offset)
    )
    raw = df["PRE_1h"].to_numpy(dtype="f8")
    value = np.where(raw >= 999000, np.nan, raw)
    value[raw == 999990] = 0.0
    qc.record_mask(
        "missing_code", df["station"], (raw >= 999000) & (raw != 999990), "999998/999999 codes"
    )
    df = df.assign(time=time, value=value)
    dups = df.duplicated(["station", "time"], keep="first").to_numpy()
    qc.record_mask("duplicate", df["station"], dups, "repeated station-hour rows (first kept)")
    df = df[~dups]
    wide = df.pivot(index="time", columns="station", values="value").sort_index()
    wide.columns = wide.columns.astype(str)
    wide.columns.name = None
    last = df.groupby("station").last()
    stations = pd.DataFrame(
        {
            "station": last.index.astype(str),
            "lat": last["Lat"].to_numpy(dtype="f8"),
            "lon": last["Lon"].to_numpy(dtype="f8"),
            "elevation": np.where(last["Alti"] >= 99999, np.nan, last["Alti"]).astype("f8"),
        }
    )
    logger.info(
        "read %d CMA hourly rows, %d stations, %d files", len(df), len(stations), len(files)
    )
    return wide, stations
