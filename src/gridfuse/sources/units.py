"""Units of the variables the source readers meet, and the conversions known to be safe.

A reader compares a variable's ``units`` attribute with the units it expects (the
variable's *canonical* units in :mod:`gridfuse.sources.registry`).  Spellings of the same
unit are folded together (``mm/hr``, ``mm h-1``, ``mm hr**-1`` ...); a different unit is
converted only when the conversion is exact and unambiguous for that quantity (m <-> mm of
water depth, degC -> K, hPa -> Pa, DU -> mol m-2, kg m-2 s-1 -> mm h-1 ...); anything else
is an error naming the file, the variable, what was found and what was expected.

The table is written out by hand on purpose: it holds only the conversions that are right
for these variables (``kg m-2`` is 1 mm only for liquid water depth, which is what every
precipitation variable here is).
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["UnitsError", "normalize_units", "conversion", "convert"]

# spelling -> canonical spelling
_ALIASES = {
    "mm/hr": "mm h-1",
    "mm/h": "mm h-1",
    "mmh-1": "mm h-1",
    "mm hr-1": "mm h-1",
    "mm hour-1": "mm h-1",
    "mm/hour": "mm h-1",
    "mm/day": "mm day-1",
    "mm/d": "mm day-1",
    "mm d-1": "mm day-1",
    "mm/24h": "mm day-1",
    "mm 24h-1": "mm day-1",
    "kg m-2 day-1": "mm day-1",
    "kg/m2/day": "mm day-1",
    "kg/m^2/s": "kg m-2 s-1",
    "kg/m2/s": "kg m-2 s-1",
    "kg m-2 s-1": "kg m-2 s-1",
    "mm s-1": "kg m-2 s-1",
    "mm/s": "kg m-2 s-1",
    "kg m-2": "mm",
    "kg/m2": "mm",
    "kg/m^2": "mm",
    "millimeters": "mm",
    "millimetres": "mm",
    "metres": "m",
    "meters": "m",
    "m of water equivalent": "m",
    "kelvin": "K",
    "k": "K",
    "degk": "K",
    "deg k": "K",
    "degc": "degC",
    "deg c": "degC",
    "°c": "degC",
    "c": "degC",
    "celsius": "degC",
    "degrees celsius": "degC",
    "degree_celsius": "degC",
    "degrees_celsius": "degC",
    "pa": "Pa",
    "hpa": "hPa",
    "mbar": "hPa",
    "mb": "hPa",
    "kpa": "kPa",
    "m/s": "m s-1",
    "m s-1": "m s-1",
    "km/h": "km h-1",
    "km h-1": "km h-1",
    "mol m-2": "mol m-2",
    "mol/m2": "mol m-2",
    "mol/m^2": "mol m-2",
    "du": "DU",
    "dobson": "DU",
    "dobson units": "DU",
    "molec cm-2": "molec cm-2",
    "molec/cm2": "molec cm-2",
    "molecules cm-2": "molec cm-2",
    "molecules/cm2": "molec cm-2",
    "molecules/cm^2": "molec cm-2",
    "m": "m",
    "mm": "mm",
    "1": "1",
    "%": "%",
    "percent": "%",
}

_DU_PER_MOL_M2 = 2241.15  # 1 DU = 2.6867e20 molecules m-2 = 4.4615e-4 mol m-2
_AVOGADRO = 6.02214076e23

# (from, to) -> (scale, offset): to = from * scale + offset
_CONVERSIONS: dict[tuple[str, str], tuple[float, float]] = {
    ("m", "mm"): (1000.0, 0.0),
    ("mm", "m"): (0.001, 0.0),
    ("kg m-2 s-1", "mm h-1"): (3600.0, 0.0),
    ("mm h-1", "kg m-2 s-1"): (1.0 / 3600.0, 0.0),
    ("mm day-1", "mm h-1"): (1.0 / 24.0, 0.0),
    ("mm h-1", "mm day-1"): (24.0, 0.0),
    ("kg m-2 s-1", "mm day-1"): (86400.0, 0.0),
    ("degC", "K"): (1.0, 273.15),
    ("K", "degC"): (1.0, -273.15),
    ("hPa", "Pa"): (100.0, 0.0),
    ("kPa", "Pa"): (1000.0, 0.0),
    ("km h-1", "m s-1"): (1.0 / 3.6, 0.0),
    ("DU", "mol m-2"): (1.0 / _DU_PER_MOL_M2, 0.0),
    ("mol m-2", "DU"): (_DU_PER_MOL_M2, 0.0),
    ("molec cm-2", "mol m-2"): (1e4 / _AVOGADRO, 0.0),
}


class UnitsError(ValueError):
    """Units that are not the expected ones and have no known conversion."""


def normalize_units(units) -> str:
    """The canonical spelling of a units string (``""`` for none).

    Case, blanks, ``**`` and ``^`` are folded: ``"mm/hr"``, ``"mm hr**-1"`` and
    ``"mm h-1"`` all give ``"mm h-1"``; an unknown spelling is returned stripped.
    """
    if units is None:
        return ""
    if isinstance(units, bytes):
        units = units.decode(errors="replace")
    text = " ".join(str(units).strip().split())
    if not text:
        return ""
    key = text.lower().replace("**", "").replace("^", "")
    key = re.sub(r"\s*/\s*", "/", key)
    if key in _ALIASES:
        return _ALIASES[key]
    compact = key.replace(" ", "")
    for alias, canon in _ALIASES.items():
        if alias.replace(" ", "") == compact:
            return canon
    return text


def conversion(found, expected) -> tuple[float, float] | None:
    """``(scale, offset)`` turning values in ``found`` units into ``expected`` units.

    ``(1, 0)`` when the units are the same (after :func:`normalize_units`); None when no
    safe conversion is known.
    """
    f, e = normalize_units(found), normalize_units(expected)
    if f == e:
        return (1.0, 0.0)
    return _CONVERSIONS.get((f, e))


def convert(values, found, expected, *, what: str = "") -> np.ndarray:
    """Values in ``found`` units converted to ``expected`` units (float32 array).

    Raises :class:`UnitsError` naming ``what`` (file and variable) when no safe conversion
    is known.
    """
    conv = conversion(found, expected)
    if conv is None:
        raise UnitsError(
            f"{what}: units {found!r}, expected {expected!r} (or a unit with a known "
            f"conversion to it)"
        )
    scale, offset = conv
    arr = np.asarray(values, dtype="f4")
    if scale == 1.0 and offset == 0.0:
        return arr
    return (arr * np.float32(scale) + np.float32(offset)).astype("f4")
