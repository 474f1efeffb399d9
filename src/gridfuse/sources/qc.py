"""Quality control of gridded inputs: every masked value and every lost day is counted.

A reader checks each variable of each file it reads with :func:`check_values`: the
``units`` attribute against the variable's known units (converted where the conversion is
known, an error otherwise), values outside the physically possible range masked (set to
NaN) and counted, and a magnitude check that catches values in other units than the label
says (an error naming the file, with the units the values look like).  The counts of one
source-year accumulate in a :class:`SourceQC`, together with missing files, variables
missing from a file, all-NaN variables, unit conversions and the days lost.

:meth:`SourceQC.enforce` then applies the :class:`QCLimits`: a file with more than
``max_masked_file_fraction`` of a variable's values masked, a source-year with more than
``max_masked_fraction`` masked, or more than ``max_lost_days`` of its covered days without
any valid value, fails with a :class:`QualityError` that lists the files.  The table
(:meth:`SourceQC.table`) is written beside the daily file as ``{year}.qc.csv``
(``docs/contracts.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .units import UnitsError, conversion, normalize_units

logger = logging.getLogger(__name__)

__all__ = [
    "QCLimits",
    "QualityError",
    "SourceQC",
    "QC_COLUMNS",
    "check_values",
    "units_factor",
    "mask_implausible",
    "read_qc_tables",
    "summarize",
    "summary_html",
]

QC_COLUMNS = ["source", "year", "check", "variable", "file", "n", "total", "fraction", "detail"]
_MAX_FILE_ROWS = 200  # per-file rows kept per check and variable in the table
_MAX_NAMED = 10  # files named in an error message


class QualityError(ValueError):
    """A source-year whose losses exceed the configured limits (the message lists files)."""


@dataclass(frozen=True)
class QCLimits:
    """Limits beyond which a source-year fails (fractions in 0..1).

    Attributes
    ----------
    max_lost_days : float
        Covered product days without any valid value (missing files or steps, a variable
        missing or all-NaN, every cell masked), as a fraction of the covered days.
    max_masked_fraction : float
        Values masked as physically impossible, as a fraction of the values checked in the
        source-year (per variable).
    max_masked_file_fraction : float
        The same within one file (per variable).
    ranges : mapping
        Variable name -> ``(min, max)`` overriding the registry's physically possible range
        (in the variable's canonical units; None = unbounded).
    """

    max_lost_days: float = 0.10
    max_masked_fraction: float = 0.01
    max_masked_file_fraction: float = 0.05
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, *cfgs: Mapping | None) -> QCLimits:
        """Limits from config mappings (later ones override earlier ones key by key).

        Keys: ``max_lost_days``, ``max_masked_fraction``, ``max_masked_file_fraction``,
        ``ranges`` (variable -> ``[min, max]``).
        """
        merged: dict = {}
        ranges: dict = {}
        for cfg in cfgs:
            for k, v in dict(cfg or {}).items():
                if k == "ranges":
                    for var, r in dict(v or {}).items():
                        lo, hi = (list(r) + [None, None])[:2]
                        ranges[str(var)] = (lo, hi)
                elif k in ("max_lost_days", "max_masked_fraction", "max_masked_file_fraction"):
                    merged[k] = float(v)
                else:
                    raise KeyError(
                        f"input_qc: unknown key {k!r}; expected max_lost_days, "
                        "max_masked_fraction, max_masked_file_fraction, ranges"
                    )
        for k, v in merged.items():
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"input_qc.{k}: {v} is not a fraction in 0..1")
        return cls(ranges=ranges, **merged)

    def range_of(self, spec) -> tuple[float | None, float | None]:
        """The physically possible range of a variable spec, with overrides applied."""
        if spec.name in self.ranges:
            return self.ranges[spec.name]
        return spec.valid_min, spec.valid_max


class SourceQC:
    """Losses and QC decisions of one source-year (or of one file, merged later).

    Parameters
    ----------
    source : str
        Source key (for the table and messages).
    year : int, optional
        Year of the job.
    limits : QCLimits, optional
        Limits used by :meth:`enforce` and by :func:`check_values`.
    """

    def __init__(self, source: str = "", year: int | None = None, limits: QCLimits | None = None):
        self.source = source
        self.year = year
        self.limits = limits or QCLimits()
        self.files_read = 0
        self.missing: list[str] = []  # expected files (or step/time ranges) not found
        self.var_missing: dict[str, list[str]] = {}
        self.units: dict[tuple[str, str, str], list[str]] = {}  # (var, found, used) -> files
        # var -> file -> [checked, masked, fill]
        self.values: dict[str, dict[str, list[int]]] = {}
        self.hints: dict[tuple[str, str], str] = {}  # (var, file) -> likely units
        self.notes: list[tuple[str, str, int, int, str]] = []  # check, var, n, total, detail
        self.days_expected = 0
        self.days_not_covered = 0
        self.days_lost: list[pd.Timestamp] = []
        self.days_covered = 0
        self.lost_reasons: list[str] = []  # files named when days are lost
        self.ranges: dict[str, tuple] = {}  # var -> range used (shown in the table)
        self.maxima: dict[str, dict[str, float]] = {}  # var -> file -> largest valid value
        self.year_max_min: dict[str, float] = {}  # var -> the year's largest value must reach
        # per product day, whether the source has data for it; set by readers whose
        # outputs cannot tell (TROPOMI: a day with orbits may have every pixel screened)
        self.day_has_data: np.ndarray | None = None

    # ------------------------------------------------------------------ recording
    def file_read(self, n: int = 1) -> None:
        """Count files read."""
        self.files_read += int(n)

    def file_missing(self, what: str) -> None:
        """An expected file (or a time range no file holds) was not found."""
        self.missing.append(str(what))

    def variable_missing(self, path, var: str) -> None:
        """A file lacks a variable the format needs."""
        self.var_missing.setdefault(var, []).append(str(path))

    def units_used(self, path, var: str, found: str, used: str) -> None:
        """A file's units were converted (``found`` != ``used``) or assumed (``found`` empty)."""
        self.units.setdefault((var, found, used), []).append(str(path))

    def values_checked(self, path, var: str, checked: int, masked: int, fill: int = 0) -> None:
        """Range-check counts of one file's variable."""
        per = self.values.setdefault(var, {}).setdefault(str(path), [0, 0, 0])
        per[0] += int(checked)
        per[1] += int(masked)
        per[2] += int(fill)

    def note(
        self, check: str, n: int, total: int = 0, detail: str = "", variable: str = ""
    ) -> None:
        """Any other counted decision (e.g. pixel screening)."""
        self.notes.append((check, variable, int(n), int(total), detail))

    def merge(self, other: SourceQC) -> SourceQC:
        """Add the records of ``other`` (e.g. of one file read in a worker process)."""
        self.files_read += other.files_read
        self.missing += other.missing
        for src, dst in ((other.var_missing, self.var_missing), (other.units, self.units)):
            for k, v in src.items():
                dst.setdefault(k, []).extend(v)
        for var, per in other.values.items():
            for path, (c, m, f) in per.items():
                self.values_checked(path, var, c, m, f)
        self.hints.update(other.hints)
        self.ranges.update(other.ranges)
        self.year_max_min.update(other.year_max_min)
        for var, per in other.maxima.items():
            mine = self.maxima.setdefault(var, {})
            for path, m in per.items():
                mine[path] = max(m, mine.get(path, -np.inf))
        self.notes += other.notes
        return self

    def set_days(
        self,
        days: Iterable,
        covered: Iterable | None,
        valid: Iterable[bool],
        reasons: Iterable[str] = (),
    ) -> None:
        """Record which product days were expected, covered and lost.

        Parameters
        ----------
        days : dates
            Product days of the job.
        covered : dates or None
            The days the source covers (None = all).
        valid : bools, one per day
            Whether the day has any valid value (for every output variable).
        reasons : str
            Files (or other causes) to name when days are lost.
        """
        days = pd.DatetimeIndex(days).normalize()
        valid = np.asarray(list(valid), dtype=bool)
        if valid.size != days.size:
            raise ValueError(f"set_days: {valid.size} flags for {days.size} days")
        cov = (
            np.ones(days.size, bool)
            if covered is None
            else days.isin(pd.DatetimeIndex(covered).normalize())
        )
        self.days_expected = int(days.size)
        self.days_not_covered = int((~cov).sum())
        self.days_covered = int(cov.sum())
        self.days_lost = list(days[cov & ~valid])
        self.lost_reasons = list(reasons)

    # ------------------------------------------------------------------ results
    @property
    def all_nan(self) -> dict[str, list[str]]:
        """Variable -> files in which it has no valid value (none, or every one masked)."""
        out: dict[str, list[str]] = {}
        for var, per in self.values.items():
            files = sorted(p for p, (c, m, _) in per.items() if c - m <= 0)
            if files:
                out[var] = files
        return out

    def masked_fraction(self, var: str) -> float:
        per = self.values.get(var, {})
        checked = sum(v[0] for v in per.values())
        masked = sum(v[1] for v in per.values())
        return masked / checked if checked else 0.0

    def problems(self) -> list[str]:
        """What exceeds the limits, one message per problem (empty when all is well)."""
        lim = self.limits
        out = []
        for var, per in sorted(self.values.items()):
            bad = {
                p: v for p, v in per.items() if v[0] and v[1] / v[0] > lim.max_masked_file_fraction
            }
            if bad:
                names = sorted(bad, key=lambda p: -bad[p][1] / bad[p][0])
                shown = [
                    f"{p} ({bad[p][1]} of {bad[p][0]} values, {100 * bad[p][1] / bad[p][0]:.1f}%"
                    + (f"; {self.hints[(var, p)]}" if (var, p) in self.hints else "")
                    + ")"
                    for p in names[:_MAX_NAMED]
                ]
                more = f" and {len(names) - _MAX_NAMED} more" if len(names) > _MAX_NAMED else ""
                out.append(
                    f"{var}: {len(bad)} file(s) with more than "
                    f"{100 * lim.max_masked_file_fraction:g}% of the values outside the "
                    f"physically possible range (input_qc.max_masked_file_fraction): "
                    + "; ".join(shown)
                    + more
                )
            frac = self.masked_fraction(var)
            if frac > lim.max_masked_fraction:
                worst = sorted(per, key=lambda p: -per[p][1])[:_MAX_NAMED]
                out.append(
                    f"{var}: {100 * frac:.2f}% of the source-year's values outside the "
                    f"physically possible range (> {100 * lim.max_masked_fraction:g}%, "
                    f"input_qc.max_masked_fraction); most in "
                    + ", ".join(f"{p} ({per[p][1]})" for p in worst if per[p][1])
                )
        for var, need in sorted(self.year_max_min.items()):
            per = self.maxima.get(var, {})
            if per and self.days_covered >= 28 and max(per.values()) < need:
                top = max(per.values())
                out.append(
                    f"{var}: the largest value of the source-year, {top:.3g}, is below {need:g} "
                    f"(no real year stays that low): values in a larger unit than labelled? "
                    f"(e.g. ERA5 tp in m labelled mm); files: "
                    + ", ".join(sorted(per)[:_MAX_NAMED])
                )
        if self.days_covered and len(self.days_lost) / self.days_covered > lim.max_lost_days:
            n = len(self.days_lost)
            first = ", ".join(f"{d:%Y-%m-%d}" for d in self.days_lost[:5])
            causes = self._causes()
            out.append(
                f"{n} of {self.days_covered} covered days lost "
                f"({100 * n / self.days_covered:.1f}% > {100 * lim.max_lost_days:g}%, "
                f"input_qc.max_lost_days), first {first}" + (f"; {causes}" if causes else "")
            )
        return out

    def _causes(self) -> str:
        parts = []
        if self.missing:
            m = self.missing
            parts.append(
                f"{len(m)} missing file(s)/steps: "
                + ", ".join(m[:_MAX_NAMED])
                + (f" and {len(m) - _MAX_NAMED} more" if len(m) > _MAX_NAMED else "")
            )
        for label, table in (("lacking", self.var_missing), ("all-NaN", self.all_nan)):
            for var, files in sorted(table.items()):
                files = sorted(set(files))
                parts.append(
                    f"{len(files)} file(s) {label} {var}: "
                    + ", ".join(files[:_MAX_NAMED])
                    + (f" and {len(files) - _MAX_NAMED} more" if len(files) > _MAX_NAMED else "")
                )
        parts += [r for r in self.lost_reasons if r]
        return "; ".join(parts)

    def enforce(self) -> None:
        """Raise :class:`QualityError` listing every problem, else log the summary."""
        probs = self.problems()
        what = f"{self.source or 'source'} {self.year if self.year is not None else ''}".strip()
        if probs:
            raise QualityError(f"{what}: input QC failed:\n  " + "\n  ".join(probs))
        masked = {v: round(100 * self.masked_fraction(v), 3) for v in self.values}
        logger.info(
            "%s: QC ok: %d files read, %d missing, %d/%d covered days lost, masked %% %s",
            what,
            self.files_read,
            len(self.missing),
            len(self.days_lost),
            self.days_covered,
            masked,
        )

    def table(self) -> pd.DataFrame:
        """All records as rows of :data:`QC_COLUMNS` (summary rows have an empty ``file``)."""
        rows: list[tuple] = []

        def add(check, var, path, n, total, detail=""):
            frac = n / total if total else (0.0 if n == 0 else np.nan)
            rows.append((check, var, path, int(n), int(total), frac, detail))

        add("days_expected", "", "", self.days_expected, self.days_expected)
        add("days_not_covered", "", "", self.days_not_covered, self.days_expected)
        lost = ", ".join(f"{d:%Y-%m-%d}" for d in self.days_lost[:31])
        add("days_lost", "", "", len(self.days_lost), self.days_covered, lost)
        add("files_read", "", "", self.files_read, 0)
        add("files_missing", "", "", len(self.missing), 0)
        for m in self.missing[:_MAX_FILE_ROWS]:
            add("files_missing", "", m, 1, 0)
        for check, table in (
            ("variable_missing", self.var_missing),
            ("variable_all_nan", self.all_nan),
        ):
            for var, files in sorted(table.items()):
                files = sorted(set(files))
                add(check, var, "", len(files), 0)
                for f in files[:_MAX_FILE_ROWS]:
                    add(check, var, f, 1, 0)
        for (var, found, used), files in sorted(self.units.items()):
            check = "units_assumed" if not found else "units_converted"
            detail = f"no units attribute, taken as {used}" if not found else f"{found} -> {used}"
            add(check, var, "", len(set(files)), 0, detail)
        for var, per in sorted(self.values.items()):
            checked = sum(v[0] for v in per.values())
            masked = sum(v[1] for v in per.values())
            fill = sum(v[2] for v in per.values())
            lo, hi = self.ranges.get(var, (None, None))
            add("out_of_range", var, "", masked, checked, f"outside [{lo}, {hi}], masked")
            add("missing_values", var, "", fill, checked + fill, "fill values / no data")
            bad = sorted((p for p, v in per.items() if v[1]), key=lambda p: -per[p][1])
            for p in bad[:_MAX_FILE_ROWS]:
                add("out_of_range", var, p, per[p][1], per[p][0], self.hints.get((var, p), ""))
        for check, var, n, total, detail in self.notes:
            add(check, var, "", n, total, detail)
        df = pd.DataFrame(rows, columns=QC_COLUMNS[2:])
        df.insert(0, "year", self.year if self.year is not None else -1)
        df.insert(0, "source", self.source)
        return df.astype({"n": "int64", "total": "int64", "fraction": "float64"})


# ---------------------------------------------------------------------- value checks
# Units a value may really be in when it is out of range under its label: label -> others.
_LOOK_ALIKES = {
    "m": ("mm",),
    "mm": ("m",),
    "mm h-1": ("mm day-1",),
    "K": ("degC",),
    "mol m-2": ("DU", "molec cm-2"),
    "Pa": ("hPa",),
}


def _likely_units(values: np.ndarray, canonical: str, lo, hi) -> str:
    """The units under which the out-of-range values would be plausible, if any."""
    for alt in _LOOK_ALIKES.get(canonical, ()):
        conv = conversion(alt, canonical)
        if conv is None:
            continue
        v = values * conv[0] + conv[1]
        ok = np.ones(v.shape, bool)
        if lo is not None:
            ok &= v >= lo
        if hi is not None:
            ok &= v <= hi
        if v.size and ok.mean() > 0.99:
            return f"the values look like {alt}"
    return ""


def check_values(
    values,
    spec,
    units,
    *,
    path,
    qc: SourceQC,
    variable: str | None = None,
) -> np.ndarray:
    """One file's values of a variable in canonical units, implausible values masked.

    Parameters
    ----------
    values : array
        The values as stored (after the format's documented missing codes became NaN).
    spec : gridfuse.sources.registry.Variable
        Canonical units, physically possible range and magnitude bounds.
    units : str
        The file's ``units`` attribute (empty: none; the canonical units are assumed and
        recorded).
    path : path
        The file (named in records and errors).
    qc : SourceQC
        Receives the counts (its ``limits.ranges`` may override the spec's range).
    variable : str, optional
        Name recorded (default ``spec.name``).

    Returns
    -------
    numpy.ndarray
        float32 values in ``spec.units`` with out-of-range values set to NaN.

    Raises
    ------
    UnitsError
        Units without a known conversion, or values whose magnitude does not fit the
        label (e.g. ERA5 ``tp`` in mm labelled ``m``); the message names the file.
    """
    name = variable or spec.name
    scale, offset = units_factor(units, spec, path=path, qc=qc, variable=name)
    arr = np.array(values, dtype="f4", copy=True)
    if (scale, offset) != (1.0, 0.0):
        arr = arr * np.float32(scale) + np.float32(offset)
    return mask_implausible(arr, spec, units, path=path, qc=qc, variable=name)


def units_factor(units, spec, *, path, qc: SourceQC, variable: str | None = None):
    """``(scale, offset)`` from a file's units to the spec's canonical units (recorded).

    Raises :class:`~gridfuse.sources.units.UnitsError` naming the file and variable when no
    safe conversion is known.
    """
    name = variable or spec.name
    found = normalize_units(units)
    extra = {normalize_units(k): v for k, v in spec.extra_units.items()}
    if not found:
        qc.units_used(path, name, "", spec.units)
        return (1.0, 0.0)
    if found in extra:
        conv = extra[found]
    else:
        conv = conversion(found, spec.units)
        if conv is None:
            raise UnitsError(
                f"{path}: {name}: units {units!r}, expected {spec.units!r} (or a unit with a "
                f"known conversion to it: {_convertible(spec)})"
            )
    if conv != (1.0, 0.0):
        qc.units_used(path, name, str(units), spec.units)
    return conv


def _convertible(spec) -> str:
    from .units import _CONVERSIONS

    canon = normalize_units(spec.units)
    names = sorted({f for f, t in _CONVERSIONS if t == canon} | set(spec.extra_units))
    return ", ".join(names) if names else "none"


def mask_implausible(
    arr: np.ndarray, spec, units, *, path, qc: SourceQC, variable: str | None = None
) -> np.ndarray:
    """Mask (NaN) and count values outside the physically possible range, in place.

    ``arr`` is float32 in the spec's canonical units; the counts go to ``qc`` under
    ``path``; a magnitude that does not fit the label raises
    :class:`~gridfuse.sources.units.UnitsError`.
    """
    name = variable or spec.name
    finite = np.isfinite(arr)
    fill = int(arr.size - finite.sum())
    lo, hi = qc.limits.range_of(spec)
    qc.ranges[name] = (lo, hi)
    with np.errstate(invalid="ignore"):
        bad = np.zeros(arr.shape, bool)
        if lo is not None:
            bad |= arr < lo
        if hi is not None:
            bad |= arr > hi
    n_bad = int(bad.sum())
    if n_bad:
        hint = _likely_units(arr[bad].astype("f8"), normalize_units(spec.units), lo, hi)
        if hint:
            qc.hints[(name, str(path))] = f"labelled {units or spec.units!r}, {hint}"
        arr[bad] = np.nan
    qc.values_checked(path, name, int(finite.sum()), n_bad, fill)
    good = arr[np.isfinite(arr)]
    if good.size:
        _check_magnitude(good, spec, units, f"{path}: {name}")
        if spec.year_max_min is not None:
            per = qc.maxima.setdefault(name, {})
            per[str(path)] = max(float(good.max()), per.get(str(path), -np.inf))
            qc.year_max_min[name] = spec.year_max_min
    if spec.clip_min is not None:
        np.maximum(arr, np.float32(spec.clip_min), out=arr, where=np.isfinite(arr))
    return arr


def _check_magnitude(good: np.ndarray, spec, units, what: str) -> None:
    """Values whose typical magnitude does not fit their label: an error with a hint."""
    label = units or f"{spec.units} (assumed)"
    if spec.median_abs_max is not None and good.size >= 20:
        med = float(np.median(np.abs(good)))
        if med > spec.median_abs_max:
            raise UnitsError(
                f"{what}: median |value| {med:.4g} {spec.units} is implausible for "
                f"{spec.description} (expected below {spec.median_abs_max:g}); units "
                f"labelled {label!r} but the values look like "
                f"{' or '.join(_LOOK_ALIKES.get(normalize_units(spec.units), ('other units',)))}"
            )
    pos = good[good > 0]
    if spec.positive_median_max is not None and pos.size >= spec.min_positive:
        med = float(np.median(pos))
        if med > spec.positive_median_max:
            raise UnitsError(
                f"{what}: median of the positive values {med:.4g} {spec.units} is far above "
                f"{spec.description} ({spec.positive_median_max:g} at most); units labelled "
                f"{label!r} but the values look like a smaller unit (mm labelled m?)"
            )


def read_qc_tables(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate ``{year}.qc.csv`` tables (missing files are skipped)."""
    frames = [
        pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in paths if Path(p).is_file()
    ]
    if not frames:
        return pd.DataFrame(columns=QC_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """One row per source-year from concatenated QC tables (:data:`QC_COLUMNS`).

    Columns: ``source, year, days, not_covered, lost, lost_pct, files_read,
    files_missing, files_lacking_variable, files_all_nan, values_masked, masked_pct,
    units_converted, status`` (``absent``, ``ok`` or ``losses`` when any day was lost or
    value masked).
    """
    cols = [
        "source",
        "year",
        "days",
        "not_covered",
        "lost",
        "lost_pct",
        "files_read",
        "files_missing",
        "files_lacking_variable",
        "files_all_nan",
        "values_masked",
        "masked_pct",
        "units_converted",
        "status",
    ]
    if table.empty:
        return pd.DataFrame(columns=cols)
    t = table.assign(file=table["file"].fillna("").astype(str))
    summ = t[t["file"] == ""]
    rows = []
    for (source, year), g in summ.groupby(["source", "year"], sort=True):

        def n(check, g=g):
            return int(g.loc[g["check"] == check, "n"].sum())

        def total(check, g=g):
            return int(g.loc[g["check"] == check, "total"].sum())

        covered = total("days_lost")
        lost = n("days_lost")
        checked = total("out_of_range")
        masked = n("out_of_range")
        absent = n("absent") > 0
        rows.append(
            {
                "source": source,
                "year": int(year),
                "days": n("days_expected"),
                "not_covered": n("days_not_covered"),
                "lost": lost,
                "lost_pct": round(100 * lost / covered, 2) if covered else 0.0,
                "files_read": n("files_read"),
                "files_missing": n("files_missing"),
                "files_lacking_variable": n("variable_missing"),
                "files_all_nan": n("variable_all_nan"),
                "values_masked": masked,
                "masked_pct": round(100 * masked / checked, 4) if checked else 0.0,
                "units_converted": n("units_converted"),
                "status": "absent" if absent else ("losses" if lost or masked else "ok"),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def summary_html(
    summary: pd.DataFrame,
    path: str | Path,
    *,
    title: str = "",
    stations: pd.DataFrame | None = None,
) -> Path:
    """Write the per-source-year summary (and the station QC totals) as one HTML page."""
    from html import escape

    from ..io import atomic_path

    parts = [f"<h2>{escape(title)}</h2>"] if title else []
    parts.append("<h3>Gridded sources: losses per source-year</h3>")
    parts.append(summary.to_html(index=False, border=1, na_rep=""))
    if stations is not None and not stations.empty:
        st = stations[stations["station"].astype(str) == "*"][["check", "n", "detail"]]
        parts.append("<h3>Stations: QC decisions (totals)</h3>")
        parts.append(st.to_html(index=False, border=1, na_rep=""))
    html = "<html><head><meta charset='utf-8'></head><body>" + "\n".join(parts) + "</body></html>"
    path = Path(path)
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path
