"""Station quality control: every decision is counted, logged and kept in a table.

Checks work on wide tables (index = time, one column per station) so that they are
vectorized over all stations; each removal is recorded in a :class:`QCLog` as rows of
``check, station, n, detail`` (a summary row with station ``*`` for every check that ran,
even when it removed nothing, plus one row per affected station, or per file with an empty
station for file-level decisions).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = [
    "QCLog",
    "QC_COLUMNS",
    "check_range",
    "check_rejected_fraction",
    "check_wet_median",
    "check_non_positive",
    "check_stuck",
    "stuck_mask",
    "check_coordinates",
    "check_inside_grid",
    "check_duplicate_stations",
]

QC_COLUMNS = ["check", "station", "n", "detail"]


class QCLog:
    """Accumulates QC decisions as rows of ``check, station, n, detail`` and logs them."""

    def __init__(self) -> None:
        self._rows: list[tuple[str, str, int, str]] = []
        # file-level losses per year: year -> expected count, and file -> count lost
        self._expected: dict[int, float] = {}
        self._lost: dict[int, dict[str, float]] = {}
        self._unit: str = "values"

    def expect(self, year: int, n: float, unit: str = "values") -> None:
        """Add ``n`` values (station-days, station-hours...) the files of ``year`` should hold."""
        self._expected[int(year)] = self._expected.get(int(year), 0.0) + float(n)
        self._unit = unit

    def lose(self, year: int, file: str, n: float) -> None:
        """Record ``n`` expected values of ``year`` lost to a file-level fault in ``file``
        (missing, truncated, rows dropped)."""
        if n > 0:
            per = self._lost.setdefault(int(year), {})
            per[str(file)] = per.get(str(file), 0.0) + float(n)

    def enforce_losses(self, max_fraction: float, what: str = "stations") -> None:
        """Raise ``ValueError`` naming the files when a year lost more than ``max_fraction``
        of its expected values to file-level faults; the fraction of every year is recorded
        as a ``lost_fraction`` summary row."""
        bad = []
        for year in sorted(self._expected):
            exp = self._expected[year]
            lost = sum(self._lost.get(year, {}).values())
            frac = lost / exp if exp else 0.0
            self.record(
                "lost_fraction",
                "*",
                int(round(lost)),
                f"{year}: {lost:.0f} of {exp:.0f} {self._unit} lost to missing/truncated "
                f"files or dropped rows ({100 * frac:.2f}%)",
            )
            if frac > max_fraction:
                files = sorted(self._lost[year].items(), key=lambda kv: -kv[1])
                named = ", ".join(f"{f} ({n:.0f})" for f, n in files[:10])
                more = f" and {len(files) - 10} more" if len(files) > 10 else ""
                bad.append(
                    f"{year}: {100 * frac:.1f}% of the {self._unit} lost (> "
                    f"{100 * max_fraction:g}%, stations.qc.max_lost_fraction): {named}{more}"
                )
        if bad:
            raise ValueError(f"{what}: station files lose too much:\n  " + "\n  ".join(bad))

    def record(self, check: str, station: str, n: int, detail: str = "") -> None:
        """Add one row (station ``*`` = summary, ``""`` = file-level)."""
        self._rows.append((check, str(station), int(n), detail))

    def summary(self, check: str, n: int, detail: str, n_stations: int | None = None) -> None:
        """Add the summary row of a check and log it."""
        self.record(check, "*", n, detail)
        where = f" at {n_stations} station(s)" if n_stations is not None else ""
        logger.info("QC %s: %d%s (%s)", check, n, where, detail)

    def record_counts(self, check: str, counts: pd.Series, detail: str) -> int:
        """Record per-station counts (index = station) plus the summary row; returns the total."""
        counts = counts[counts > 0]
        for station, n in counts.items():
            self.record(check, station, int(n), detail)
        total = int(counts.sum())
        self.summary(check, total, detail, n_stations=len(counts))
        return total

    def record_mask(self, check: str, stations: Iterable, mask, detail: str) -> int:
        """Record a boolean ``mask`` over rows whose station ids are ``stations``."""
        mask = np.asarray(mask, dtype=bool)
        st = pd.Series(np.asarray(stations, dtype=object))
        counts = st[mask].astype(str).value_counts().sort_index()
        return self.record_counts(check, counts, detail)

    def record_wide(self, check: str, mask: pd.DataFrame, detail: str) -> int:
        """Record a boolean wide mask (columns = stations)."""
        return self.record_counts(check, mask.sum(axis=0).astype(int), detail)

    def total(self, check: str) -> int:
        """Sum of the summary rows of ``check`` (0 when it never ran)."""
        return sum(n for c, s, n, _ in self._rows if c == check and s == "*")

    def n_rows(self, check: str) -> int:
        """Number of non-summary rows of ``check`` (e.g. files affected)."""
        return sum(1 for c, s, _, _ in self._rows if c == check and s != "*")

    def table(self) -> pd.DataFrame:
        """All decisions as a DataFrame with columns ``check, station, n, detail``."""
        return pd.DataFrame(self._rows, columns=QC_COLUMNS).astype(
            {"check": str, "station": str, "n": "int64", "detail": str}
        )


def check_range(
    wide: pd.DataFrame, lo: float | None, hi: float | None, log: QCLog, what: str = "values"
) -> pd.DataFrame:
    """Set values below ``lo`` or above ``hi`` to NaN (None = no bound); counted as ``range``."""
    v = wide.to_numpy(dtype="f8", copy=True)
    with np.errstate(invalid="ignore"):
        bad = np.zeros(v.shape, bool)
        if lo is not None:
            bad |= v < lo
        if hi is not None:
            bad |= v > hi
    log.record_wide(
        "range", pd.DataFrame(bad, columns=wide.columns), f"{what} outside [{lo}, {hi}]"
    )
    v[bad] = np.nan
    return pd.DataFrame(v, index=wide.index, columns=wide.columns)


def check_rejected_fraction(
    log: QCLog, check: str, n_values: int, max_fraction: float, what: str = "values"
) -> None:
    """Raise ``ValueError`` naming the worst stations when ``check`` removed more than
    ``max_fraction`` of ``n_values`` (values in other units than the configured range,
    e.g. 0.1 mm read as mm, are caught here instead of being silently dropped)."""
    rows = [(s, n) for c, s, n, _ in log._rows if c == check and s not in ("*", "")]
    total = sum(n for _, n in rows)
    if n_values and total / n_values > max_fraction:
        worst = sorted(rows, key=lambda r: -r[1])[:10]
        raise ValueError(
            f"{100 * total / n_values:.1f}% of the {n_values} {what} station values failed the "
            f"{check} check (> {100 * max_fraction:g}%, stations.qc.max_range_fraction): wrong "
            f"units or a wrong stations.qc range? Most at stations "
            + ", ".join(f"{s} ({n})" for s, n in worst)
        )


def check_wet_median(
    wide: pd.DataFrame, max_median: float, log: QCLog, min_positive: int = 100
) -> float:
    """Raise ``ValueError`` naming the wettest stations when the median of all positive
    values of ``wide`` exceeds ``max_median`` (values in a smaller unit than configured,
    e.g. 0.1 mm read as mm, that the range check lets through); judged with at least
    ``min_positive`` positive values.  The median is recorded in the detail of a
    ``wet_median`` summary row (``n`` 0: it removes nothing).  Returns the median (NaN
    when not judged)."""
    v = wide.to_numpy(dtype="f8")
    with np.errstate(invalid="ignore"):
        pos = v > 0
    n = int(pos.sum())
    med = float(np.median(v[pos])) if n >= min_positive else float("nan")
    shown = f"{med:.3g}" if np.isfinite(med) else f"not judged (< {min_positive})"
    log.summary(
        "wet_median", 0, f"median of the {n} positive daily values: {shown} (<= {max_median:g})"
    )
    if np.isfinite(med) and med > max_median:
        per = wide.where(wide > 0).median().dropna().sort_values(ascending=False)
        raise ValueError(
            f"the median of the {n} positive daily station values is {med:.3g} (> "
            f"{max_median:g}, stations.qc.max_wet_median): values in a smaller unit than "
            "configured (0.1 mm as mm?); wettest stations "
            + ", ".join(f"{s} ({m:.3g})" for s, m in per.head(10).items())
        )
    return med


def check_non_positive(wide: pd.DataFrame, log: QCLog, what: str = "values") -> pd.DataFrame:
    """Set values <= 0 to NaN (concentrations cannot be zero or negative); ``non_positive``."""
    v = wide.to_numpy(dtype="f8", copy=True)
    with np.errstate(invalid="ignore"):
        bad = v <= 0
    log.record_wide("non_positive", pd.DataFrame(bad, columns=wide.columns), f"{what} <= 0")
    v[bad] = np.nan
    return pd.DataFrame(v, index=wide.index, columns=wide.columns)


def stuck_mask(values: np.ndarray, run: int, ignore_zero: bool = True) -> np.ndarray:
    """Mask of values inside runs of ``run`` or more identical consecutive values.

    Parameters
    ----------
    values : 2-D array (time, station)
        NaN breaks a run.
    run : int
        Minimum run length flagged (< 2 disables the check).
    ignore_zero : bool
        Zeros never count as stuck (dry spells are real for precipitation).
    """
    v = np.asarray(values, dtype="f8")
    if v.ndim != 2:
        raise ValueError(f"stuck_mask expects a 2-D (time, station) array, got shape {v.shape}")
    if run < 2 or v.size == 0:
        return np.zeros(v.shape, bool)
    col = v.T  # (station, time): runs are contiguous in memory after ravel
    starts = np.ones(col.shape, bool)
    starts[:, 1:] = col[:, 1:] != col[:, :-1]  # NaN != NaN, so NaN starts its own run
    run_id = np.cumsum(starts.ravel()) - 1
    length = np.bincount(run_id)[run_id].reshape(col.shape)
    mask = (length >= run) & np.isfinite(col)
    if ignore_zero:
        mask &= col != 0
    return mask.T


def check_stuck(
    wide: pd.DataFrame, run: int, log: QCLog, ignore_zero: bool = True, unit: str = "steps"
) -> pd.DataFrame:
    """Remove runs of >= ``run`` identical values (counted as ``stuck``)."""
    mask = stuck_mask(wide.to_numpy(dtype="f8"), run, ignore_zero)
    zero = " non-zero" if ignore_zero else ""
    log.record_wide(
        "stuck",
        pd.DataFrame(mask, columns=wide.columns),
        f"runs of >= {run}{zero} identical {unit}",
    )
    v = wide.to_numpy(dtype="f8", copy=True)
    v[mask] = np.nan
    return pd.DataFrame(v, index=wide.index, columns=wide.columns)


def check_duplicate_stations(stations: pd.DataFrame, log: QCLog) -> pd.DataFrame:
    """Drop repeated station ids in a station table (first kept), counted as ``duplicate_station``."""
    dup = stations["station"].duplicated(keep="first").to_numpy()
    log.record_mask(
        "duplicate_station", stations["station"], dup, "station listed twice (first kept)"
    )
    return stations[~dup].reset_index(drop=True)


def check_coordinates(
    stations: pd.DataFrame, wide: pd.DataFrame, log: QCLog
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Remove stations without coordinates: in the data but not in the table, or NaN lat/lon.

    The count per station is the number of valid values removed with it.
    """
    known = stations.dropna(subset=["lat", "lon"])
    have = set(known["station"].tolist())
    bad = [c for c in wide.columns if c not in have]
    counts = wide[bad].notna().sum(axis=0).to_dict() if bad else {}
    for s in bad:
        log.record("no_coordinates", s, int(counts[s]), "station without lat/lon; removed")
    log.summary(
        "no_coordinates",
        len(bad),
        "stations in the data without coordinates (removed)",
        n_stations=len(bad),
    )
    return known.reset_index(drop=True), wide.drop(columns=bad)


def check_inside_grid(
    stations: pd.DataFrame, wide: pd.DataFrame, grid, log: QCLog
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Remove stations outside ``grid`` (a :class:`gridfuse.grid.Grid`); counted, not an error."""
    inside = grid.contains(stations["lon"].to_numpy(), stations["lat"].to_numpy())
    columns = set(wide.columns)
    in_data = [s for s in stations.loc[~inside, "station"].tolist() if s in columns]
    counts = wide[in_data].notna().sum(axis=0).to_dict() if in_data else {}
    for s in in_data:
        log.record("outside_grid", s, int(counts[s]), f"outside {grid.bounds}; removed")
    log.summary(
        "outside_grid",
        len(in_data),
        f"stations with data outside {grid.bounds} (removed)",
        len(in_data),
    )
    return stations[inside].reset_index(drop=True), wide.drop(columns=in_data)
