"""The quality layer of a product: which sources entered the prediction of each cell-day.

A product file holds, beside the product variable, an integer variable
``source_flags`` ``(time, lat, lon)``: bit ``i`` is set when source ``i`` (in the order of the
variable's ``flag_meanings``) had a valid value at the cell on the day, and so entered the
prediction as measured data.  A cleared bit means the source was missing there (a gap in the
source, an uncovered year, a day outside the inputs) and the model saw its training mean
(precip) or a missing feature (so2) instead.  The variable is a CF flag variable
(``flag_masks`` with ``flag_meanings``), so CF tools decode it; :func:`decode` does the same
in Python.

Typical use, in an inference loop over blocks of raw inputs::

    flags = source_flags(raw[h:-h], channels=model.channels, sources=srcs, axis=1)
    yield day_slice, prediction, flags
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "QUALITY_VARIABLE",
    "flag_dtype",
    "flag_attrs",
    "source_flags",
    "flags_from_valid",
    "flags_from_fields",
    "decode",
]

QUALITY_VARIABLE = "source_flags"
# signed types: CF-1.8 knows no unsigned ones (the sign bit stays unused)
_DTYPES = (np.int8, np.int16, np.int32)


def flag_dtype(n_sources: int) -> np.dtype:
    """Smallest (signed, CF-1.8) integer type with a bit per source (at most 31 sources)."""
    for dt in _DTYPES:
        if n_sources <= np.iinfo(dt).bits - 1:
            return np.dtype(dt)
    raise ValueError(f"at most 31 sources fit a quality bitmask, got {n_sources}")


def _check_sources(sources: Sequence[str]) -> list[str]:
    names = [str(s) for s in sources]
    if not names:
        raise ValueError("a quality bitmask needs at least one source")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate source names in {names}")
    bad = [s for s in names if not s or any(ch.isspace() for ch in s)]
    if bad:
        raise ValueError(f"source names must be non-empty words (CF flag_meanings): {bad}")
    return names


def flag_attrs(sources: Sequence[str], variable: str = "") -> dict:
    """CF attributes of the flag variable for ``sources`` (bit i = sources[i])."""
    names = _check_sources(sources)
    dt = flag_dtype(len(names))
    what = f" of {variable}" if variable else ""
    return {
        "long_name": f"sources with valid input data in the prediction{what} (bitmask)",
        "flag_masks": np.array([1 << i for i in range(len(names))], dtype=dt),
        "flag_meanings": " ".join(f"{s}_valid" for s in names),
        "valid_range": np.array([0, (1 << len(names)) - 1], dtype=dt),
        "comment": (
            "bit i set: source i (flag_meanings order) had a valid value at the cell on the "
            "day and entered the prediction; cleared: the gap was filled (training mean or "
            "missing feature). 0: no source had data."
        ),
    }


def flags_from_valid(valid: Mapping[str, np.ndarray], sources: Sequence[str]) -> np.ndarray:
    """Bitmask from one boolean array per source (all the same shape).

    ``valid[s]`` is True where source ``s`` had data; bit ``i`` of the result is
    ``valid[sources[i]]``.  A source missing from ``valid`` is treated as absent (bit 0).
    """
    names = _check_sources(sources)
    shapes = {np.shape(v) for v in valid.values()}
    if len(shapes) > 1:
        raise ValueError(f"validity arrays differ in shape: {sorted(shapes)}")
    if not shapes:
        raise ValueError("no validity array given")
    unknown = sorted(set(valid) - set(names))
    if unknown:
        raise ValueError(f"validity given for {unknown}, not among the sources {names}")
    dt = flag_dtype(len(names))
    out = np.zeros(shapes.pop(), dtype=dt)
    for i, s in enumerate(names):
        if s in valid:
            out |= np.asarray(valid[s], dtype=bool).astype(dt) << dt.type(i)
    return out


def source_flags(
    raw: np.ndarray,
    channels: Sequence[str],
    sources: Sequence[str],
    *,
    axis: int = 1,
) -> np.ndarray:
    """Bitmask of the sources with finite raw input, from a block of raw model inputs.

    Parameters
    ----------
    raw : ndarray
        Raw (not standardized, not gap-filled) inputs with a channel axis, e.g. the
        ``(days, channels, lat, lon)`` blocks of :func:`gridfuse.predict.grid_inputs`.
    channels : sequence of str
        Name of each channel along ``axis``.
    sources : sequence of str
        The sources of the bitmask, in bit order; each must be a channel (a source with
        several channels, such as the variables of ``era5_met``, goes through
        :func:`flags_from_valid` instead).
    axis : int
        The channel axis of ``raw``.

    Returns
    -------
    ndarray
        ``raw``'s shape without the channel axis, of :func:`flag_dtype`.
    """
    names = _check_sources(sources)
    channels = [str(c) for c in channels]
    if raw.shape[axis] != len(channels):
        raise ValueError(
            f"raw block has {raw.shape[axis]} channels on axis {axis}, names given for "
            f"{len(channels)}: {channels}"
        )
    missing = [s for s in names if s not in channels]
    if missing:
        raise ValueError(f"sources {missing} are not among the channels {channels}")
    valid = {s: np.isfinite(np.take(raw, channels.index(s), axis=axis)) for s in names}
    return flags_from_valid(valid, names)


def flags_from_fields(
    fields: Mapping[str, np.ndarray], groups: Mapping[str, Sequence[str]]
) -> np.ndarray:
    """Bitmask from named raw fields, a source being valid where all its fields are finite.

    ``groups`` maps each source (bit order) to the fields it provides, e.g.
    ``{"tropomi": ["so2_column"], "era5_met": ["t2m", "blh", "u10", "v10"]}``; a source
    with no field (every file of it an absent marker) is never valid.
    """
    missing = sorted({f for fs in groups.values() for f in fs} - set(fields))
    if missing:
        raise ValueError(f"fields {missing} of the sources {dict(groups)} were not given")
    if not fields:
        raise ValueError("no field given")
    shape = np.shape(next(iter(fields.values())))
    valid = {}
    for source, names in groups.items():
        if not names:
            valid[source] = np.zeros(shape, dtype=bool)
            continue
        ok = np.isfinite(np.asarray(fields[names[0]]))
        for n in names[1:]:
            ok &= np.isfinite(np.asarray(fields[n]))
        valid[source] = ok
    return flags_from_valid(valid, list(groups))


def decode(flags: np.ndarray, meanings: str | Sequence[str]) -> dict[str, np.ndarray]:
    """Boolean array per source from a bitmask and its ``flag_meanings``."""
    names = meanings.split() if isinstance(meanings, str) else list(meanings)
    flags = np.asarray(flags)
    return {
        (n[: -len("_valid")] if n.endswith("_valid") else n): (flags >> i) & 1 == 1
        for i, n in enumerate(names)
    }
