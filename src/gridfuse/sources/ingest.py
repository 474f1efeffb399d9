"""One ingest for every source format: read a source-year, count its losses, enforce limits.

:func:`ingest` asks the registry (:mod:`gridfuse.sources.registry`) for the format's reader,
hands it a :class:`ReadRequest`, and returns the daily dataset and the QC table of the
source-year (``daily/{source}/{year}.qc.csv``, ``docs/contracts.md``).  A day the source
covers but that has no valid value is *lost*; past ``input_qc.max_lost_days`` (and the
masked-value limits) the job fails with a :class:`~gridfuse.sources.qc.QualityError` naming
the files.  Whether a year is *absent* comes only from the coverage (registry versions and
the source's ``first_year``/``last_year``), never from an empty or missing folder:
:func:`absent_table` is the QC table of such a year.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..daily import DayWindow
from .qc import QCLimits, QualityError, SourceQC
from .registry import get_format

logger = logging.getLogger(__name__)

__all__ = ["ReadRequest", "ingest", "absent_table", "day_has_data", "read_daily"]


@dataclass
class ReadRequest:
    """What a registry reader is asked for.

    Attributes
    ----------
    folders : list of Path
        Folders (or files) searched recursively for the format's files; folders that do
        not exist are skipped (neighbouring years of a ``{year}`` path).
    days : DatetimeIndex
        Product days wanted.
    window : DayWindow
        The product day.
    bbox : (west, south, east, north)
        Region to keep (every source cell overlapping it).
    grid : gridfuse.grid.Grid, optional
        The product grid (readers that build their own native grid need it: TROPOMI).
    margin : float
        Degrees around ``grid`` (``bbox`` is ``grid`` padded by it).
    variable : str
        Variable name override (empty = the format's default).
    options : mapping
        The source's other config keys (``first_date``, ``grid_res``, ``qa_min``, ...).
    threads : int
        Worker processes a reader may use.
    qc : SourceQC
        Receives every QC record of the read.
    covered : DatetimeIndex, optional
        The days the source covers (missing data of other days is expected, not a loss).
    """

    folders: list[Path]
    days: pd.DatetimeIndex
    window: DayWindow
    bbox: tuple[float, float, float, float]
    grid: object = None
    margin: float = 0.0
    variable: str = ""
    options: Mapping = field(default_factory=dict)
    threads: int = 1
    qc: SourceQC = field(default_factory=SourceQC)
    covered: pd.DatetimeIndex | None = None


def day_has_data(ds: xr.Dataset, outputs: Sequence[str], counts: Sequence[str] = ()) -> np.ndarray:
    """Per day: whether every output variable (counts excepted) has a finite value."""
    ok = np.ones(ds.sizes["time"], dtype=bool)
    for name in outputs:
        if name in counts or name not in ds:
            continue
        v = np.asarray(ds[name].values)
        ok &= np.isfinite(v).reshape(v.shape[0], -1).any(axis=1)
    return ok


def ingest(
    fmt: str,
    folders: Sequence,
    days,
    window: DayWindow | int,
    grid,
    *,
    source: str = "",
    year: int | None = None,
    margin: float = 0.5,
    options: Mapping | None = None,
    covered=None,
    limits: QCLimits | Mapping | None = None,
    threads: int = 1,
) -> tuple[xr.Dataset, pd.DataFrame]:
    """Read one source-year into daily fields, with its QC table, and enforce the limits.

    Parameters
    ----------
    fmt : str
        Registered format name.
    folders : paths
        Folders (or files) to search.
    days : dates
        Product days of the job (one year of the period).
    window : DayWindow or int
        Day window (or its ``utc_start_hour``).
    grid : gridfuse.grid.Grid
        Product grid; the source is cropped to it plus ``margin`` degrees.
    source : str
        Source key (table and messages).
    year : int, optional
        Year of the job.
    options : mapping, optional
        The source's config (``variable`` and format options; ``path``/``url`` ignored).
    covered : dates, optional
        Days the source covers (default: all ``days``).
    limits : QCLimits or mapping, optional
        Loss limits (:class:`~gridfuse.sources.qc.QCLimits`; a mapping is read with
        ``QCLimits.from_config``).
    threads : int
        Reader worker processes.

    Returns
    -------
    dataset : xarray.Dataset
        The format's output variables on its native grid, ``attrs["days_missing"]``.
    qc_table : pandas.DataFrame
        Columns :data:`gridfuse.sources.qc.QC_COLUMNS`.

    Raises
    ------
    QualityError
        When the losses exceed the limits (the message names the files).
    """
    spec = get_format(fmt)
    if not isinstance(limits, QCLimits):
        limits = QCLimits.from_config(limits)
    window = window if isinstance(window, DayWindow) else DayWindow(int(window))
    days = pd.DatetimeIndex(days).normalize()
    covered = days if covered is None else pd.DatetimeIndex(covered).normalize()
    opts = {k: v for k, v in dict(options or {}).items() if k not in ("path", "url", "qc")}
    qc = SourceQC(source or fmt, year, limits)
    req = ReadRequest(
        folders=[Path(f) for f in folders],
        days=days,
        window=window,
        bbox=grid.padded(margin).bounds if margin > 0 else grid.bounds,
        grid=grid,
        margin=float(margin),
        variable=str(opts.get("variable", "") or ""),
        options=opts,
        threads=max(1, int(threads)),
        qc=qc,
        covered=covered,
    )
    ds = spec.reader()(req)
    if not isinstance(ds, xr.Dataset):
        ds = ds.to_dataset()
    valid = qc.day_has_data
    if valid is None:
        valid = day_has_data(ds, spec.outputs, spec.count_variables)
    qc.set_days(days, covered, valid)
    ds.attrs["days_missing"] = int((~np.asarray(valid, bool)).sum())
    ds.attrs["days_lost"] = len(qc.days_lost)
    table = qc.table()
    try:
        qc.enforce()
    except QualityError:
        shown = table[(table["n"] > 0) & (table["file"].fillna("") == "")]
        logger.error("QC table of %s %s:\n%s", source or fmt, year, shown.to_string(index=False))
        raise
    return ds, table


def absent_table(source: str, year: int, days, reason: str) -> pd.DataFrame:
    """The QC table of a source-year the source does not cover (every day not covered)."""
    qc = SourceQC(source, year)
    days = pd.DatetimeIndex(days)
    qc.set_days(days, [], np.zeros(days.size, bool))
    qc.note("absent", 1, 0, reason)
    return qc.table()


def read_daily(
    fmt: str,
    folders,
    days,
    window: DayWindow,
    bbox,
    *,
    variable: str = "",
    threads: int = 1,
    qc: SourceQC | None = None,
    **options,
) -> xr.DataArray:
    """The precipitation reader API of :data:`gridfuse.sources.READERS` (no limits enforced).

    ``reader(folders, days, window, bbox, *, variable="", threads=1, **options)`` returns
    ``precip`` (mm/day, float32) ``(time, lat, lon)`` with ``attrs["days_missing"]``; the
    QC records go to ``qc`` when given.
    """
    if isinstance(folders, (str, Path)):
        folders = [folders]
    req = ReadRequest(
        folders=[Path(f) for f in folders],
        days=pd.DatetimeIndex(days).normalize(),
        window=window if isinstance(window, DayWindow) else DayWindow(int(window or 0)),
        bbox=tuple(map(float, bbox)),
        variable=variable,
        options=options,
        threads=max(1, int(threads)),
        qc=qc if qc is not None else SourceQC(fmt),
    )
    ds = get_format(fmt).reader()(req)
    da = ds["precip"] if isinstance(ds, xr.Dataset) else ds
    da.attrs.setdefault("days_missing", int(ds.attrs.get("days_missing", 0)))
    return da
