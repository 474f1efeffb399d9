"""Feature tables of the SO2 model: sample frames and the feature matrix builder.

A **sample frame** is a DataFrame with one row per pixel-day: ``date``, ``row``, ``col`` (on
the product grid), the dynamic fields at the pixel, their neighbourhood means
(``<var>_m<k>``), the static layers and their neighbourhood means (same naming, sizes
``static_sizes``), the upwind samples of static layers (``<var>_up<d>``, the
``upwind_size`` mean ``d`` km upwind along the day's ``u10``/``v10`` at the pixel), and for
station rows ``station`` and ``value``.
:func:`station_frame` builds it at station pixels (training, CV), :func:`tile_frame` for every
pixel of a tile (prediction); both compute the same numbers for the same pixel-day.

:class:`FeatureBuilder` turns a sample frame into the model's feature matrix, in a fixed,
documented column order:

``dynamic`` | ``static`` | calendar (``doy, year, wond``) | location (``lon_n, lat_n``) |
spatial (``<dynamic>_m<k>``, ``<static>_m<k>``, ``<static>_up<d>``, if on) | ``rid`` (if on) |
``prev_pollutant`` (if on) |
``conv1_*``, ``conv2_*`` (if on; computed from the columns before them: all of them with
``conv_inputs="all"``, or only the measured fields, i.e. dynamic, static and spatial columns,
with ``conv_inputs="fields"``, which keeps calendar, location and random ID out of the mix).

Each technique (``random_id``, ``spatial``, ``convolution``, ``sequential``) is a switch of
:class:`FeatureConfig`; switching one off removes exactly its columns (and, for
``spatial``, the declustering weights of training rows).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..grid import Grid
from .calendar import CALENDAR_COLUMNS, calendar_features
from .convolution import ParameterConvolution
from .location import LOCATION_COLUMNS, location_features
from .random_id import RandomID
from .sequential import SEQUENTIAL_COLUMN
from .spatial import (
    decluster_weights,
    neighbourhood_mean,
    spatial_columns,
    upwind_columns,
    upwind_offsets,
    window_mean_at,
)

logger = logging.getLogger(__name__)

__all__ = [
    "TECHNIQUES",
    "DEFAULT_DYNAMIC",
    "DEFAULT_STATIC",
    "FeatureConfig",
    "FeatureBuilder",
    "station_pixels",
    "station_frame",
    "attach_values",
    "open_dynamic",
    "tile_frame",
]

TECHNIQUES = ("random_id", "spatial", "convolution", "sequential")
DEFAULT_DYNAMIC = ["so2_column", "t2m", "d2m", "rh", "blh", "sp", "u10", "v10", "ws", "wd", "tp"]
DEFAULT_STATIC = ["elevation", "slope", "landcover", "ndvi", "population", "road_density"]


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Which features the SO2 model uses (all switches on = the full model)."""

    dynamic: tuple[str, ...] = tuple(DEFAULT_DYNAMIC)
    static: tuple[str, ...] = tuple(DEFAULT_STATIC)
    random_id: bool = True
    spatial: bool = True
    convolution: bool = True
    sequential: bool = False
    sizes: tuple[int, ...] = (3, 5)
    spatial_variables: tuple[str, ...] = ()  # empty: all dynamic variables
    # neighbourhood means of static layers: emissions around a site (population, roads)
    static_sizes: tuple[int, ...] = (5, 11, 21)
    spatial_static: tuple[str, ...] = ("population", "road_density", "ndvi", "elevation")
    # upwind samples of emission proxies: the upwind_size mean upwind_km km against the wind
    upwind_km: tuple[float, ...] = (3.0, 6.0, 12.0)
    upwind_static: tuple[str, ...] = ("population", "road_density")
    upwind_size: int = 5
    wind: tuple[str, ...] = ("u10", "v10")
    decluster_deg: float = 0.0  # declustering weights of training rows; 0 disables them
    rid_block: int = 1  # random IDs of rid_block x rid_block pixel blocks (1 = per pixel)
    m1: int = 64
    m2: int = 16
    width: int = 3
    conv_inputs: str = "all"  # "all" base columns, or "fields" (dynamic, static, spatial)
    seed: int = 0

    @classmethod
    def from_dict(cls, d: Mapping | None) -> FeatureConfig:
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown feature settings {unknown}; known: {sorted(names)}")
        for k in (
            "dynamic",
            "static",
            "sizes",
            "spatial_variables",
            "static_sizes",
            "spatial_static",
            "upwind_km",
            "upwind_static",
            "wind",
        ):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def __post_init__(self):
        if len(self.wind) != 2:
            raise ValueError(f"wind must name the (u, v) variables; found {self.wind}")
        if self.conv_inputs not in ("all", "fields"):
            raise ValueError(f"conv_inputs must be 'all' or 'fields'; found {self.conv_inputs!r}")

    def to_dict(self) -> dict:
        return {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
        }

    def without(self, technique: str) -> FeatureConfig:
        """This configuration with one technique switched off."""
        if technique not in TECHNIQUES:
            raise ValueError(f"unknown technique {technique!r}; expected one of {TECHNIQUES}")
        return dataclasses.replace(self, **{technique: False})

    def plain(self) -> FeatureConfig:
        """Plain LightGBM inputs: no random ID, spatial sampling, convolution, sequential input."""
        return dataclasses.replace(
            self, random_id=False, spatial=False, convolution=False, sequential=False
        )

    @property
    def spatial_vars(self) -> tuple[str, ...]:
        return self.spatial_variables or self.dynamic

    @property
    def static_spatial_vars(self) -> tuple[str, ...]:
        """Static layers given neighbourhood means (none when no ``static_sizes``)."""
        return self.spatial_static if self.static_sizes else ()

    @property
    def upwind_vars(self) -> tuple[str, ...]:
        """Static layers given upwind samples (none when no ``upwind_km``)."""
        return self.upwind_static if self.upwind_km else ()

    @property
    def upwind_columns(self) -> list[str]:
        return upwind_columns(self.upwind_vars, self.upwind_km)

    @property
    def spatial_columns(self) -> list[str]:
        """The spatial-sampling columns: dynamic and static means, then upwind samples."""
        return (
            spatial_columns(self.spatial_vars, self.sizes)
            + spatial_columns(self.static_spatial_vars, self.static_sizes)
            + self.upwind_columns
        )

    @property
    def base_columns(self) -> list[str]:
        """Feature columns before the convolution, in the documented order."""
        cols = list(self.dynamic) + list(self.static) + CALENDAR_COLUMNS + LOCATION_COLUMNS
        if self.spatial:
            cols += self.spatial_columns
        if self.random_id:
            cols.append("rid")
        if self.sequential:
            cols.append(SEQUENTIAL_COLUMN)
        return cols

    @property
    def conv_columns(self) -> list[str]:
        """The parameter-convolution columns (none when it is off)."""
        if not self.convolution:
            return []
        return [f"conv1_{i:02d}" for i in range(self.m1)] + [
            f"conv2_{i:02d}" for i in range(self.m2)
        ]

    def rid_shape(self, grid_shape: tuple[int, int]) -> tuple[int, int]:
        """Shape of the random-ID grid: one ID per ``rid_block x rid_block`` pixel block."""
        b = int(self.rid_block)
        return (-(-int(grid_shape[0]) // b), -(-int(grid_shape[1]) // b))


class FeatureBuilder:
    """Feature matrix of a sample frame; holds the stored random IDs and convolution state.

    Parameters
    ----------
    cfg : FeatureConfig
    grid : Grid
        The product grid (location normalization and random IDs).
    rid : RandomID, optional
        Stored random IDs (drawn from ``cfg.seed`` when omitted).
    """

    def __init__(self, cfg: FeatureConfig, grid: Grid, rid: RandomID | None = None):
        self.cfg = cfg
        self.grid = grid
        if cfg.rid_block < 1:
            raise ValueError(f"rid_block must be >= 1 pixel; found {cfg.rid_block}")
        shape = cfg.rid_shape(grid.shape)
        self.rid = rid if rid is not None else RandomID(shape, seed=cfg.seed)
        if self.rid.shape != shape:
            raise ValueError(
                f"random IDs are for a grid of {self.rid.shape}; expected {shape} "
                f"(grid {grid.shape}, rid_block {cfg.rid_block})"
            )
        self.conv: ParameterConvolution | None = None

    # ------------------------------------------------------------------ columns
    @property
    def base_columns(self) -> list[str]:
        return self.cfg.base_columns

    @property
    def conv_columns(self) -> list[str]:
        return self.cfg.conv_columns

    @property
    def columns(self) -> list[str]:
        return self.base_columns + self.conv_columns

    def technique_columns(self, technique: str) -> list[str]:
        """The columns a technique adds (what switching it off removes)."""
        c = self.cfg
        return {
            "random_id": ["rid"],
            "spatial": c.spatial_columns,
            "convolution": [f"conv1_{i:02d}" for i in range(c.m1)]
            + [f"conv2_{i:02d}" for i in range(c.m2)],
            "sequential": [SEQUENTIAL_COLUMN],
        }[technique]

    # ------------------------------------------------------------------ matrices
    def base_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The non-convolution columns of ``frame`` as a float32 matrix."""
        n = len(frame)
        out = np.empty((n, len(self.base_columns)), dtype=np.float32)
        rows = frame["row"].to_numpy(np.int64)
        cols = frame["col"].to_numpy(np.int64)
        derived: dict[str, np.ndarray] = {}
        cal = calendar_features(frame["date"].to_numpy())
        for k in CALENDAR_COLUMNS:
            derived[k] = cal[k].to_numpy()
        derived["lon_n"], derived["lat_n"] = location_features(
            self.grid.lon[cols], self.grid.lat[rows], self.grid
        )
        if self.cfg.random_id:
            b = self.cfg.rid_block
            derived["rid"] = self.rid(rows // b, cols // b)
        for j, name in enumerate(self.base_columns):
            if name in derived:
                out[:, j] = derived[name]
            elif name in frame.columns:
                out[:, j] = frame[name].to_numpy(np.float32)
            else:
                raise KeyError(
                    f"feature {name!r} is not in the sample frame (columns {list(frame.columns)})"
                )
        return out

    @property
    def conv_input_index(self) -> np.ndarray:
        """Positions (in :attr:`base_columns`) of the columns the convolution reads."""
        cols = self.base_columns
        if self.cfg.conv_inputs == "all":
            return np.arange(len(cols))
        c = self.cfg
        keep = set(c.dynamic) | set(c.static) | (set(c.spatial_columns) if c.spatial else set())
        return np.array([j for j, n in enumerate(cols) if n in keep], dtype=np.int64)

    def fit(self, frame: pd.DataFrame) -> FeatureBuilder:
        """Fit the convolution's normalization on the (training) rows of ``frame``."""
        if self.cfg.convolution:
            c = self.cfg
            self.conv = ParameterConvolution(c.m1, c.m2, c.width, c.seed).fit(
                self.base_matrix(frame)[:, self.conv_input_index]
            )
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Feature matrix (float32, columns :attr:`columns`) of ``frame``."""
        base = self.base_matrix(frame)
        if not self.cfg.convolution:
            return base
        if self.conv is None:
            raise RuntimeError(
                "FeatureBuilder: call fit() before transform() when convolution is on"
            )
        conv = self.conv.transform(base[:, self.conv_input_index])
        return np.concatenate([base, conv], axis=1)

    def weights(self, frame: pd.DataFrame) -> np.ndarray:
        """Training-row weights: declustering when spatial sampling is on, else ones."""
        if self.cfg.spatial and self.cfg.decluster_deg > 0 and len(frame):
            rows = frame["row"].to_numpy(np.int64)
            cols = frame["col"].to_numpy(np.int64)
            return decluster_weights(
                self.grid.lon[cols], self.grid.lat[rows], self.cfg.decluster_deg
            )
        return np.ones(len(frame), dtype=np.float32)

    # ------------------------------------------------------------------ storage
    def state(self) -> dict[str, np.ndarray]:
        st = {
            "rid_perm": self.rid.perm,
            "rid_shape": np.array(self.rid.shape),
            "rid_seed": np.array(self.rid.seed),
        }
        if self.conv is not None:
            st.update(self.conv.state())
        return st

    @classmethod
    def from_state(cls, cfg: FeatureConfig, grid: Grid, st: Mapping) -> FeatureBuilder:
        rid = RandomID(
            tuple(np.asarray(st["rid_shape"])), int(st["rid_seed"]), perm=np.asarray(st["rid_perm"])
        )
        b = cls(cfg, grid, rid)
        if cfg.convolution:
            b.conv = ParameterConvolution.from_state(st)
        return b


# ---------------------------------------------------------------------- sample frames
def station_pixels(stations: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """``station, row, col`` of the stations inside the grid (others are dropped, logged)."""
    inside = grid.contains(stations["lon"].to_numpy(), stations["lat"].to_numpy())
    if (~inside).any():
        logger.info(
            "%d of %d stations lie outside the grid and are dropped",
            int((~inside).sum()),
            len(stations),
        )
    st = stations.loc[inside]
    r, c = grid.rowcol(st["lon"].to_numpy(), st["lat"].to_numpy())
    return pd.DataFrame({"station": st["station"].astype(str).to_numpy(), "row": r, "col": c})


def _check_vars(ds: xr.Dataset, names: Sequence[str], what: str) -> None:
    missing = [v for v in names if v not in ds.data_vars]
    if missing:
        raise KeyError(f"{what}: variables {missing} not found (has {sorted(ds.data_vars)})")


def _upwind_cells(dynamic, u, v, rows, cols, dist_km):
    """Grid cells (clipped to the grid) ``dist_km`` upwind of pixels ``rows``/``cols``."""
    lat = dynamic["lat"].values[rows]
    res = Grid.from_coords(dynamic["lat"].values, dynamic["lon"].values).res
    drow, dcol = upwind_offsets(u, v, dist_km, lat, res)
    ny, nx = dynamic.sizes["lat"], dynamic.sizes["lon"]
    return np.clip(rows + drow, 0, ny - 1), np.clip(cols + dcol, 0, nx - 1)


def _check_wind(dynamic: xr.Dataset, cfg: FeatureConfig) -> None:
    if cfg.upwind_vars:
        _check_vars(dynamic, list(cfg.wind), "wind of the upwind sampling")


def station_frame(
    dynamic: xr.Dataset,
    static: xr.Dataset,
    pixels: pd.DataFrame,
    cfg: FeatureConfig,
    *,
    time_block: int = 32,
) -> pd.DataFrame:
    """Sample frame at station pixels for every day of ``dynamic``.

    Stations sharing a pixel become one series (``station`` = their ids joined by ``+``),
    as the record averages co-located monitors.

    Parameters
    ----------
    dynamic : Dataset (time, lat, lon) on the product grid, with ``cfg.dynamic`` variables.
    static : Dataset (lat, lon) with ``cfg.static`` variables.
    pixels : DataFrame ``station, row, col`` (:func:`station_pixels`).
    cfg : FeatureConfig (variables, neighbourhood sizes).
    time_block : int
        Days loaded at a time (bounds memory).
    """
    _check_vars(dynamic, cfg.dynamic, "dynamic fields")
    _check_vars(
        static,
        list(dict.fromkeys(cfg.static + cfg.static_spatial_vars + cfg.upwind_vars)),
        "static layers",
    )
    _check_wind(dynamic, cfg)
    px = (
        pixels.groupby(["row", "col"], sort=True)["station"]
        .agg(lambda s: "+".join(sorted(s)))
        .reset_index()
    )
    rows = px["row"].to_numpy(np.int64)
    cols = px["col"].to_numpy(np.int64)
    svars = cfg.spatial_vars
    # static neighbourhood means: one value per pixel, repeated every day
    layers = {
        v: np.asarray(static[v].values, np.float32)
        for v in dict.fromkeys(cfg.static_spatial_vars + cfg.upwind_vars)
    }
    static_nb = {
        f"{v}_m{k}": window_mean_at(layers[v], rows, cols, k)
        for v in cfg.static_spatial_vars
        for k in cfg.static_sizes
    }
    parts = []
    times = dynamic["time"].values.astype("datetime64[ns]")
    for a in range(0, len(times), time_block):
        sl = slice(a, a + time_block)
        nt = len(times[sl])
        cols_out: dict[str, np.ndarray] = {
            "station": np.tile(px["station"].to_numpy(), nt),
            "date": np.repeat(times[sl], len(px)),
            "row": np.tile(rows, nt),
            "col": np.tile(cols, nt),
        }
        for v in dict.fromkeys(list(cfg.dynamic) + list(svars)):
            f = np.asarray(dynamic[v].isel(time=sl).values, dtype=np.float32)
            if v in cfg.dynamic:
                cols_out[v] = f[:, rows, cols].ravel()
            if v in svars:
                for k in cfg.sizes:
                    cols_out[f"{v}_m{k}"] = window_mean_at(f, rows, cols, k).ravel()
        for name, m in static_nb.items():
            cols_out[name] = np.tile(m, nt)
        if cfg.upwind_vars:
            u, v = (np.asarray(dynamic[w].isel(time=sl).values[:, rows, cols]) for w in cfg.wind)
            rr, cc = np.broadcast_to(rows, u.shape), np.broadcast_to(cols, u.shape)
            for d in cfg.upwind_km:
                ur, uc = _upwind_cells(dynamic, u, v, rr, cc, d)
                for name in cfg.upwind_vars:
                    m = window_mean_at(layers[name], ur.ravel(), uc.ravel(), cfg.upwind_size)
                    cols_out[f"{name}_up{d:g}"] = m
        parts.append(pd.DataFrame(cols_out))
    frame = pd.concat(parts, ignore_index=True)
    for v in cfg.static:
        frame[v] = np.asarray(static[v].values, dtype=np.float32)[frame["row"], frame["col"]]
    return frame


def attach_values(frame: pd.DataFrame, daily: pd.DataFrame, pixels: pd.DataFrame) -> pd.DataFrame:
    """Add ``value``: the daily observation of the pixel's station(s) (mean when several)."""
    d = daily.merge(pixels, on="station", how="inner")
    v = d.groupby(["row", "col", "date"], sort=False)["value"].mean().rename("value").reset_index()
    v["date"] = pd.to_datetime(v["date"]).astype("datetime64[ns]")
    f = frame.copy()
    f["date"] = pd.to_datetime(f["date"]).astype("datetime64[ns]")
    out = f.merge(v, on=["row", "col", "date"], how="left")
    logger.info(
        "station frame: %d pixel-days, %d with observations, %d pixels",
        len(out),
        int(out["value"].notna().sum()),
        out[["row", "col"]].drop_duplicates().shape[0],
    )
    return out


def tile_frame(
    dynamic: xr.Dataset,
    static: xr.Dataset,
    cfg: FeatureConfig,
    time_slice: slice,
    row_slice: slice,
    col_slice: slice,
    inside: np.ndarray | None = None,
) -> pd.DataFrame:
    """Sample frame of every pixel of a tile (rows ``row_slice`` x cols ``col_slice``) and days.

    With ``inside`` (bool ``(rows, cols)``: the domain mask on the tile) only the pixels
    inside are kept (rows stay day-major, then row-major pixels). Neighbourhood means read a
    halo of ``max(sizes) // 2`` cells (dynamic fields) and
    ``max(static_sizes) // 2`` cells (static layers) around the tile, so they equal those of
    the whole field (and of :func:`station_frame`).
    """
    ny, nx = dynamic.sizes["lat"], dynamic.sizes["lon"]
    r0, r1, _ = row_slice.indices(ny)
    c0, c1, _ = col_slice.indices(nx)
    h = max(cfg.sizes) // 2 if cfg.sizes else 0
    hr0, hr1, hc0, hc1 = max(r0 - h, 0), min(r1 + h, ny), max(c0 - h, 0), min(c1 + h, nx)
    times = dynamic["time"].values[time_slice].astype("datetime64[ns]")
    nt, nr, nc = len(times), r1 - r0, c1 - c0
    rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
    out: dict[str, np.ndarray] = {
        "date": np.repeat(times, nr * nc),
        "row": np.tile(rr.ravel(), nt),
        "col": np.tile(cc.ravel(), nt),
    }
    svars = cfg.spatial_vars
    for v in dict.fromkeys(list(cfg.dynamic) + list(svars)):
        f = np.asarray(
            dynamic[v].isel(time=time_slice, lat=slice(hr0, hr1), lon=slice(hc0, hc1)).values,
            dtype=np.float32,
        )
        core = (slice(None), slice(r0 - hr0, r1 - hr0), slice(c0 - hc0, c1 - hc0))
        if v in cfg.dynamic:
            out[v] = f[core].ravel()
        if v in svars:
            for k in cfg.sizes:
                out[f"{v}_m{k}"] = neighbourhood_mean(f, k)[core].ravel()
    for v in cfg.static:
        s = np.asarray(static[v].isel(lat=row_slice, lon=col_slice).values, dtype=np.float32)
        out[v] = np.tile(s.ravel(), nt)
    hs = max(cfg.static_sizes) // 2 if cfg.static_sizes else 0
    sr0, sr1, sc0, sc1 = max(r0 - hs, 0), min(r1 + hs, ny), max(c0 - hs, 0), min(c1 + hs, nx)
    score = (slice(r0 - sr0, r1 - sr0), slice(c0 - sc0, c1 - sc0))
    for v in cfg.static_spatial_vars:
        s = np.asarray(
            static[v].isel(lat=slice(sr0, sr1), lon=slice(sc0, sc1)).values, dtype=np.float32
        )
        for k in cfg.static_sizes:
            out[f"{v}_m{k}"] = np.tile(neighbourhood_mean(s, k)[score].ravel(), nt)
    if cfg.upwind_vars:
        _check_wind(dynamic, cfg)
        u, v = (
            np.asarray(dynamic[w].isel(time=time_slice, lat=row_slice, lon=col_slice).values)
            for w in cfg.wind
        )
        rr = np.broadcast_to(np.arange(r0, r1)[None, :, None], u.shape)
        cc = np.broadcast_to(np.arange(c0, c1)[None, None, :], u.shape)
        h = cfg.upwind_size // 2
        for d in cfg.upwind_km:
            ur, uc = _upwind_cells(dynamic, u, v, rr, cc, d)
            # the static window around every sampled cell, read once per distance
            a0, a1 = max(int(ur.min()) - h, 0), min(int(ur.max()) + h + 1, ny)
            b0, b1 = max(int(uc.min()) - h, 0), min(int(uc.max()) + h + 1, nx)
            for name in cfg.upwind_vars:
                s = static[name].isel(lat=slice(a0, a1), lon=slice(b0, b1)).values
                m = neighbourhood_mean(np.asarray(s, np.float32), cfg.upwind_size)
                out[f"{name}_up{d:g}"] = m[ur - a0, uc - b0].ravel()
    if inside is not None:
        if inside.shape != (nr, nc):
            raise ValueError(f"inside mask of {inside.shape} for a tile of {(nr, nc)} cells")
        keep = np.tile(np.asarray(inside, bool).ravel(), nt)
        out = {k: v[keep] for k, v in out.items()}
    return pd.DataFrame(out)


def open_dynamic(
    datasets: Sequence[xr.Dataset], variables: Sequence[str], grid: Grid
) -> xr.Dataset:
    """Combine per-source, per-year daily datasets into one ``(time, lat, lon)`` dataset.

    Absent markers (:func:`gridfuse.io.is_absent`) are skipped; variables no dataset
    provides over some days stay NaN there, and variables none provides at all are added
    as lazy all-NaN arrays (e.g. TROPOMI before 2018), so LightGBM sees them as missing.
    """
    import dask.array as da

    from ..io import is_absent

    present = [d for d in datasets if not is_absent(d)]
    if not present:
        raise ValueError("no dynamic input: every source-year is an absent marker")
    aligned = []
    for d in present:
        ok = (d.sizes.get("lat"), d.sizes.get("lon")) == grid.shape
        if not ok or not (
            np.allclose(d["lat"].values, grid.lat, atol=grid.res * 1e-3)
            and np.allclose(d["lon"].values, grid.lon, atol=grid.res * 1e-3)
        ):
            raise ValueError(
                f"dynamic field with sizes {dict(d.sizes)} is not on the product grid {grid.shape} "
                "(lat descending, lon ascending cell centres)"
            )
        aligned.append(d.assign_coords(lat=grid.lat, lon=grid.lon))
    ds = xr.combine_by_coords(
        aligned, combine_attrs="drop_conflicts", join="outer", compat="no_conflicts"
    )
    for v in variables:
        if v not in ds.data_vars:
            logger.info("dynamic variable %s absent from every input; NaN", v)
            shape = (ds.sizes["time"], *grid.shape)
            ds[v] = (
                ("time", "lat", "lon"),
                da.full(shape, np.nan, dtype=np.float32, chunks=(8, *grid.shape)),
            )
    return ds[list(variables)]
