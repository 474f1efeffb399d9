"""Figures and tables of the report (matplotlib, Agg backend; no display needed).

Every function takes in-memory objects (xarray / pandas) and a path, writes one file
atomically and returns the path:

- :func:`plot_day_maps`: one row of maps per chosen day (product, truth, each source) on a
  shared colour scale, optionally with the station values drawn on top;
- :func:`plot_scatter`: predicted vs observed at held-out stations, one panel per model, with
  RMSE / CC / KGE / n;
- :func:`plot_scores` and :func:`scores_html`: the ``scores.csv`` metrics per model and scheme;
- :func:`plot_interpolation`: the interpolation comparison (``interpolation.csv``);
- :func:`plot_training_curves`: loss per epoch of the networks;
- :func:`plot_ablation`: change of each metric when one technique is removed;
- :func:`pick_days`: days worth mapping (the wettest / most polluted, spread over the period).

Readers of the yearly files that never hold a product year (the report jobs' memory is
priced on what they hold, see ``report_maps`` / ``report_scatter`` in :mod:`gridfuse.cost`):

- :func:`choose_days`: :func:`pick_days` from the domain means taken a day at a time
  (:func:`daily_means`), then :func:`read_days` reads only the chosen days;
- :func:`station_pairs_from_files`: :func:`station_pairs` from the stations' storage chunks
  only (:func:`gridfuse.io.values_at_cells`).

Map panels larger than :data:`MAP_CELLS` cells per side are drawn as block means
(:func:`block_mean`).
"""

from __future__ import annotations

import html
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from . import metrics  # noqa: E402
from .io import atomic_path  # noqa: E402
from .kinds import KINDS  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = [
    "pick_days",
    "plot_day_maps",
    "plot_scatter",
    "plot_scores",
    "scores_html",
    "plot_interpolation",
    "plot_training_curves",
    "plot_ablation",
    "placeholder",
    "read_days",
    "daily_means",
    "choose_days",
    "block_mean",
    "station_pairs",
    "station_pairs_from_files",
    "oof_pairs",
]

# lower is better for these; the others (cc, r2, kge, pod, csi) higher is better
LOWER_IS_BETTER = {"rmse", "mae", "far"}
# most cells per side a map panel is drawn with (~3 inches at 110 dpi need ~330)
MAP_CELLS = 1000


def _units(kind: str) -> str:
    """Figure units of a product kind (none for an unknown kind)."""
    return KINDS[kind].display_units if kind in KINDS else ""


def _cmap(kind: str) -> str:
    return KINDS[kind].colormap if kind in KINDS else "viridis"


def _save(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    logger.info("wrote %s", path)
    return path


def placeholder(path: str | os.PathLike, message: str) -> Path:
    """A small figure stating why there is nothing to show (e.g. no held-out station)."""
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return _save(fig, path)


# ---------------------------------------------------------------------- maps
def pick_days(
    field: xr.DataArray | pd.Series, n: int = 2, days: Sequence = ()
) -> list[pd.Timestamp]:
    """Days to map: ``days`` when given (those present), else the ``n`` days with the largest
    domain mean taken from ``n`` equal parts of the period (so they spread over it).

    ``field`` is the ``(time, lat, lon)`` field of the period, or its domain means already
    taken: a Series indexed by day (:func:`daily_means`; with ``days`` only its index is
    used), so the period need not be held.
    """
    if isinstance(field, pd.Series):
        times = pd.DatetimeIndex(field.index)
    else:
        times = pd.DatetimeIndex(field["time"].values)
    if len(days):
        want = pd.DatetimeIndex(pd.to_datetime(list(days))).normalize()
        found = [d for d in want if d in times]
        if not found:
            raise ValueError(
                f"none of the report days {[f'{d:%Y-%m-%d}' for d in want]} is in "
                f"{times[0]:%Y-%m-%d}..{times[-1]:%Y-%m-%d}"
            )
        return found
    if isinstance(field, pd.Series):
        mean = field.to_numpy()
    else:
        mean = field.mean(("lat", "lon"), skipna=True).values
    mean = np.where(np.isfinite(mean), mean, -np.inf)
    out = []
    for part in np.array_split(np.arange(times.size), max(1, min(n, times.size))):
        out.append(times[part[np.argmax(mean[part])]])
    return out


def _data_files(paths: Sequence[str | os.PathLike], variable: str) -> list[Path]:
    """The yearly files holding data (absent markers left out); an error names a file
    without ``variable``."""
    from .io import is_absent, read_netcdf

    out = []
    for f in paths:
        with read_netcdf(f) as ds:
            if is_absent(ds):
                continue
            if variable not in ds:
                raise ValueError(f"{f}: no variable {variable!r}; have {list(ds.data_vars)}")
        out.append(Path(f))
    return out


def daily_means(
    paths: Sequence[str | os.PathLike], variable: str, *, block: int = 1
) -> pd.Series | None:
    """Domain mean (NaN cells skipped) of ``variable`` on every day of yearly files
    (absent markers skipped), read ``block`` days at a time: the period is never held.

    Returns a Series indexed by day (the files' order), or None when no file has data.
    The means are those :func:`pick_days` takes of the whole field.
    """
    from .io import read_netcdf

    parts = []
    for f in _data_files(paths, variable):
        with read_netcdf(f) as ds:
            da = ds[variable]
            times = pd.DatetimeIndex(da["time"].values)
            for a in range(0, times.size, max(1, int(block))):
                part = da.isel(time=slice(a, a + max(1, int(block))))
                mean = part.load().mean(("lat", "lon"), skipna=True)
                parts.append(pd.Series(mean.values, index=times[a : a + part.sizes["time"]]))
    if not parts:
        return None
    return pd.concat(parts).rename_axis("time")


def choose_days(
    paths: Sequence[str | os.PathLike],
    variable: str,
    *,
    n: int = 2,
    days: Sequence = (),
    block: int = 1,
) -> list[pd.Timestamp]:
    """:func:`pick_days` of yearly files without holding them: with ``days`` only the
    files' time axes are read; otherwise the domain means, ``block`` days at a time
    (:func:`daily_means`).  Raises ValueError when no file has data."""
    from .io import read_netcdf

    if not len(days):
        means = daily_means(paths, variable, block=block)
        if means is None:
            raise ValueError(f"no {variable} data in {[str(f) for f in paths]}")
        return pick_days(means, n=n)
    files = _data_files(paths, variable)
    if not files:
        raise ValueError(f"no {variable} data in {[str(f) for f in paths]}")
    times = []
    for f in files:
        with read_netcdf(f) as ds:
            times.append(pd.DatetimeIndex(ds["time"].values))
    index = times[0].append(times[1:]) if len(times) > 1 else times[0]
    return pick_days(pd.Series(np.nan, index=index), n=n, days=days)


def _day_top(maps: Mapping, vmax: float | None) -> float:
    """Upper end of a day's colour scale: ``vmax``, else the 99th percentile of the day's
    values (1 when there are none or it is not positive)."""
    values = np.concatenate(
        [np.ravel(m.values) for m in maps.values() if m is not None] or [np.zeros(1)]
    )
    if vmax:
        top = float(vmax)
    elif np.isfinite(values).any():
        top = float(np.nanpercentile(values, 99))
    else:
        top = 1.0
    return top if top > 0 else 1.0


def block_mean(img: np.ndarray, cap: int = MAP_CELLS) -> tuple[np.ndarray, int]:
    """``img`` (rows, cols) reduced to at most ``cap`` cells per side by the NaN-aware mean
    of ``f`` x ``f`` blocks (a block without data is NaN); returns ``(image float32, f)``.

    An image within the cap comes back unchanged (as float32, ``f`` = 1).  The last block
    of a side that ``f`` does not divide is the mean of the cells it has.  The image is
    reduced a strip of blocks at a time, so only a strip is copied.
    """
    img = np.asarray(img)
    ny, nx = img.shape
    f = max(1, math.ceil(max(ny, nx) / max(1, int(cap))))
    if f == 1:
        return np.asarray(img, dtype="f4"), 1
    by, bx = math.ceil(ny / f), math.ceil(nx / f)
    out = np.empty((by, bx), dtype="f4")
    step = max(1, (1 << 22) // (f * f * bx))  # output rows per strip: about 4 M cells read
    for r0 in range(0, by, step):
        r1 = min(by, r0 + step)
        strip = np.full(((r1 - r0) * f, bx * f), np.nan, dtype="f4")
        part = img[r0 * f : r1 * f]
        strip[: part.shape[0], :nx] = part
        ok = np.isfinite(strip)
        blocks = (r1 - r0, f, bx, f)
        total = np.where(ok, strip, 0).reshape(blocks).sum(axis=(1, 3), dtype="f8")
        count = ok.reshape(blocks).sum(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[r0:r1] = np.where(count > 0, total / count, np.nan)
    return out, f


def _draw_map(ax, m: xr.DataArray, st_day: pd.DataFrame | None, cmap, top: float):
    """One panel: the field ``m`` (lat, lon) and the day's stations in the same colours
    (evaluation stations with a black edge); returns the image for the colour bar.

    A field of more than :data:`MAP_CELLS` cells per side is drawn as block means
    (:func:`block_mean`): a panel a few inches wide shows no more, and the full grid is
    never converted to float64."""
    lon, lat = m["lon"].values, m["lat"].values
    dx = abs(lon[1] - lon[0]) if lon.size > 1 else 1.0
    dy = abs(lat[1] - lat[0]) if lat.size > 1 else 1.0
    extent = (lon.min() - dx / 2, lon.max() + dx / 2, lat.min() - dy / 2, lat.max() + dy / 2)
    img = m.values
    if lat.size > 1 and lat[0] < lat[-1]:
        img = img[::-1]
    img, f = block_mean(img)
    # the last blocks may reach past the grid (their cells outside it are not averaged):
    # the image extends east and south by whole blocks, the axes keep the grid's extent
    shown = extent
    if f > 1:
        x1, y0 = extent[0] + img.shape[1] * f * dx, extent[3] - img.shape[0] * f * dy
        shown = (extent[0], x1, y0, extent[3])
    im = ax.imshow(
        np.ma.masked_invalid(img),
        extent=shown,
        origin="upper",
        cmap=cmap,
        vmin=0,
        vmax=top,
        interpolation="nearest",
        aspect="auto",
    )
    if st_day is not None and len(st_day):
        edge = np.where(
            st_day.get("role", pd.Series("train", index=st_day.index)).eq("evaluation"),
            "k",
            "w",
        )
        ax.scatter(
            st_day["lon"],
            st_day["lat"],
            c=st_day["value"],
            cmap=cmap,
            vmin=0,
            vmax=top,
            s=22,
            edgecolors=edge,
            linewidths=0.8,
        )
    if f > 1:  # the grid's extent (and any station outside it), not the blocks' overhang
        x0, x1, y0, y1 = extent
        if st_day is not None and len(st_day):
            x0, x1 = min(x0, st_day["lon"].min()), max(x1, st_day["lon"].max())
            y0, y1 = min(y0, st_day["lat"].min()), max(y1, st_day["lat"].max())
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    ax.tick_params(labelsize=7)
    return im


def plot_day_maps(
    panels: Mapping[str, xr.DataArray],
    days: Sequence,
    path: str | os.PathLike,
    *,
    kind: str = "precip",
    stations: pd.DataFrame | None = None,
    title: str = "",
    vmax: float | None = None,
) -> Path:
    """Maps of several fields (columns) on chosen days (rows), one colour scale per day.

    Parameters
    ----------
    panels : mapping name -> DataArray (time, lat, lon)
        E.g. ``{"product": ..., "truth": ..., "era5": ...}``; each on its own grid.
    days : sequence of dates
        Rows of the figure (a field lacking a day shows an empty panel).
    kind : {"precip", "so2"}
        Colour map and units.
    stations : DataFrame, optional
        ``date, lon, lat, value`` (and optional ``role``): observed values drawn as circles
        in the same colours on every panel; evaluation stations with a black edge.
    vmax : float, optional
        Upper end of the colour scale (default: the 99th percentile of the day's values).
    """
    names = list(panels)
    days = [pd.Timestamp(d) for d in days]
    cmap = plt.get_cmap(_cmap(kind)).with_extremes(bad="0.85")
    fig, axes = plt.subplots(
        len(days),
        len(names),
        figsize=(2.9 * len(names) + 0.8, 2.6 * len(days)),
        squeeze=False,
        constrained_layout=True,
    )
    for i, day in enumerate(days):
        maps = {}
        for name in names:
            da = panels[name]
            t = pd.DatetimeIndex(da["time"].values)
            maps[name] = da.isel(time=int(t.get_loc(day))) if day in t else None
        top = _day_top(maps, vmax)
        st_day = None
        if stations is not None and len(stations):
            st_day = stations[pd.to_datetime(stations["date"]) == day]
        for j, name in enumerate(names):
            ax = axes[i, j]
            if maps[name] is None:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                im = _draw_map(ax, maps[name], st_day, cmap, top)
            if i == 0:
                ax.set_title(name, fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{day:%Y-%m-%d}", fontsize=9)
        if any(m is not None for m in maps.values()):
            cb = fig.colorbar(im, ax=axes[i, :].tolist(), shrink=0.9, pad=0.01)
            cb.set_label(_units(kind), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


# ---------------------------------------------------------------------- scatter
def plot_scatter(
    pairs: pd.DataFrame,
    path: str | os.PathLike,
    *,
    models: Sequence[str] | None = None,
    kind: str = "precip",
    title: str = "",
    max_points: int = 20000,
    seed: int = 0,
) -> Path:
    """Predicted against observed values, one panel per model, with headline scores.

    Parameters
    ----------
    pairs : DataFrame
        ``model, obs, pred`` (one row per station-day).
    models : sequence of str, optional
        Panels in this order (default: the order of appearance).
    max_points : int
        Points drawn per panel at most (a seeded subsample; scores use every pair).
    """
    models = list(models or pd.unique(pairs["model"]))
    if not models:
        return placeholder(path, "no held-out station values to plot")
    ncol = min(4, len(models))
    nrow = int(np.ceil(len(models) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.1 * ncol, 3.1 * nrow), squeeze=False)
    finite = pairs[["obs", "pred"]].to_numpy("f8")
    finite = finite[np.isfinite(finite).all(axis=1)]
    top = float(np.percentile(finite, 99.9)) if finite.size else 1.0
    top = top * 1.05 if top > 0 else 1.0
    rng = np.random.default_rng(seed)
    unit = _units(kind)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(models):
            ax.axis("off")
            continue
        g = pairs[pairs["model"] == models[k]]
        o, p = g["obs"].to_numpy("f8"), g["pred"].to_numpy("f8")
        ok = np.isfinite(o) & np.isfinite(p)
        o, p = o[ok], p[ok]
        s = metrics.score(o, p, ("rmse", "cc", "kge"))
        idx = rng.choice(o.size, max_points, replace=False) if o.size > max_points else slice(None)
        ax.scatter(o[idx], p[idx], s=4, alpha=0.35, color="tab:blue", linewidths=0)
        ax.plot([0, top], [0, top], color="k", lw=0.8)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_aspect("equal")
        ax.set_title(models[k], fontsize=10)
        ax.text(
            0.03,
            0.97,
            f"RMSE {s['rmse']:.2f}\nCC {s['cc']:.2f}\nKGE {s['kge']:.2f}\nn {o.size}",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox=dict(facecolor="white", alpha=0.7, lw=0),
        )
        ax.set_xlabel(f"observed ({unit})", fontsize=8)
        ax.set_ylabel(f"predicted ({unit})", fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------- scores
def _order_models(models: Sequence[str], first: Sequence[str] = ()) -> list[str]:
    seen = [m for m in first if m in set(models)]
    return seen + sorted(set(models) - set(seen))


def plot_scores(
    scores: pd.DataFrame,
    path: str | os.PathLike,
    *,
    metric_names: Sequence[str] = ("rmse", "mae", "cc", "kge"),
    first: Sequence[str] = (),
    title: str = "",
) -> Path:
    """Bar charts of the headline scores (``subset == "all"``): one panel per metric, models
    on the x axis, one bar per scheme; the best model of each scheme is outlined."""
    sc = scores[(scores["subset"] == "all") & scores["metric"].isin(metric_names)]
    if sc.empty:
        return placeholder(path, "no scores")
    metric_names = [m for m in metric_names if m in set(sc["metric"])]
    models = _order_models(sc["model"].unique(), first)
    schemes = list(pd.unique(sc["scheme"]))
    fig, axes = plt.subplots(
        len(metric_names),
        1,
        figsize=(max(6, 0.7 * len(models) * max(1, len(schemes)) + 2), 2.4 * len(metric_names)),
        squeeze=False,
    )
    width = 0.8 / max(1, len(schemes))
    colors = plt.get_cmap("tab10")
    for ax, metric in zip(axes[:, 0], metric_names):
        tab = sc[sc["metric"] == metric].pivot_table(
            index="model", columns="scheme", values="value", aggfunc="first"
        )
        tab = tab.reindex(index=models, columns=schemes)
        x = np.arange(len(models))
        for s, scheme in enumerate(schemes):
            vals = tab[scheme].to_numpy("f8")
            bars = ax.bar(
                x + (s - (len(schemes) - 1) / 2) * width, vals, width, label=scheme, color=colors(s)
            )
            if np.isfinite(vals).any():
                best = np.nanargmin(vals) if metric in LOWER_IS_BETTER else np.nanargmax(vals)
                bars[best].set_edgecolor("k")
                bars[best].set_linewidth(1.6)
        ax.set_xticks(x, models, rotation=30, ha="right", fontsize=8)
        arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        ax.set_ylabel(f"{metric}\n({arrow})", fontsize=8)
        ax.axhline(0, color="k", lw=0.5)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=min(4, len(schemes)), loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def scores_html(
    scores: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str = "",
    first: Sequence[str] = (),
    digits: int = 3,
) -> Path:
    """An HTML page with one table per scheme (rows: models, columns: metrics, headline
    subset), the best value of each column in bold, and the breakdown subsets below."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title or 'scores')}</title>",
        "<style>body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse;"
        "margin-bottom:18px} td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
        " th{background:#eee} td:first-child{text-align:left}</style></head><body>",
    ]
    if title:
        parts.append(f"<h2>{html.escape(title)}</h2>")
    if scores.empty:
        parts.append("<p>no scores</p>")
    for (scheme, subset), g in scores.groupby(["scheme", "subset"], sort=False):
        tab = g.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
        order = [m for m in metrics.METRICS if m in tab.columns] + sorted(
            set(tab.columns) - set(metrics.METRICS)
        )
        tab = tab.reindex(index=_order_models(tab.index, first), columns=order)
        n = g.groupby("model")["n"].max().reindex(tab.index)
        parts.append(f"<h3>{html.escape(str(scheme))} — {html.escape(str(subset))}</h3><table>")
        parts.append(
            "<tr><th>model</th>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in tab.columns)
            + "<th>n</th></tr>"
        )
        best = {}
        for c in tab.columns:
            col = tab[c].to_numpy("f8")
            if np.isfinite(col).any():
                if c == "rb":
                    best[c] = np.nanargmin(np.abs(col))
                else:
                    best[c] = np.nanargmin(col) if c in LOWER_IS_BETTER else np.nanargmax(col)
        for i, (model, row) in enumerate(tab.iterrows()):
            cells = []
            for c in tab.columns:
                v = row[c]
                txt = "" if not np.isfinite(v) else f"{v:.{digits}f}"
                cells.append(f"<td><b>{txt}</b></td>" if best.get(c) == i else f"<td>{txt}</td>")
            nn = "" if pd.isna(n.loc[model]) else str(int(n.loc[model]))
            parts.append(
                f"<tr><td>{html.escape(str(model))}</td>{''.join(cells)}<td>{nn}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    path = Path(path)
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- other evaluations
def plot_interpolation(
    table: pd.DataFrame,
    path: str | os.PathLike,
    *,
    metric_names: Sequence[str] = ("rmse", "mae", "cc"),
    title: str = "",
) -> Path:
    """Grouped bars of the interpolation comparison: sources on x, one bar per method."""
    t = table[table["metric"].isin(metric_names)]
    if t.empty:
        return placeholder(path, "no interpolation comparison")
    metric_names = [m for m in metric_names if m in set(t["metric"])]
    sources = list(pd.unique(t["source"]))
    methods = list(pd.unique(t["method"]))
    fig, axes = plt.subplots(
        1, len(metric_names), figsize=(3.6 * len(metric_names), 3.0), squeeze=False
    )
    width = 0.8 / max(1, len(methods))
    for ax, metric in zip(axes[0], metric_names):
        tab = (
            t[t["metric"] == metric]
            .pivot_table(index="source", columns="method", values="value", aggfunc="first")
            .reindex(index=sources, columns=methods)
        )
        x = np.arange(len(sources))
        for k, method in enumerate(methods):
            ax.bar(
                x + (k - (len(methods) - 1) / 2) * width,
                tab[method].to_numpy("f8"),
                width,
                label=method,
            )
        ax.set_xticks(x, sources, rotation=30, ha="right", fontsize=8)
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        ax.set_title(f"{metric} {arrow}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(
    curves: Mapping[str, pd.DataFrame],
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """Training curves, one panel per network: columns holding ``loss`` on the left axis,
    validation ``rmse``/``mae`` columns (mm/day) on the right; one line per ``seed``."""
    items = [(k, h) for k, h in curves.items() if h is not None and len(h)]
    if not items:
        return placeholder(path, "no training history")
    fig, axes = plt.subplots(1, len(items), figsize=(4.2 * len(items), 3.2), squeeze=False)
    for ax, (name, h) in zip(axes[0], items):
        left = [c for c in h.columns if "loss" in c]
        right = [c for c in h.columns if c != "epoch" and ("rmse" in c or "mae" in c)]
        ax2 = ax.twinx() if right else None
        groups = h.groupby("seed", sort=True) if "seed" in h.columns else [(None, h)]
        for k, (seed, g) in enumerate(groups):
            x = g["epoch"].to_numpy() if "epoch" in g.columns else np.arange(1, len(g) + 1)
            tag = "" if seed is None else f" (seed {seed})"
            for j, c in enumerate(left):
                ax.plot(x, g[c].to_numpy("f8"), color=f"C{j}", alpha=1 - 0.3 * k, label=c + tag)
            for j, c in enumerate(right):
                ax2.plot(
                    x,
                    g[c].to_numpy("f8"),
                    "--",
                    color=f"C{j + 3}",
                    alpha=1 - 0.3 * k,
                    label=c + tag,
                )
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("training loss", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if ax2 is not None:
            ax2.set_ylabel("validation (mm/day)", fontsize=8)
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_ablation(
    table: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """Horizontal bars of ``delta`` (variant minus full model) per metric and scheme.

    ``table``: ``variant, scheme, metric, value, delta`` (as written by the ablation rule).
    """
    t = table[table["variant"] != "full"]
    if t.empty:
        return placeholder(path, "no ablation variants")
    metric_names = list(pd.unique(t["metric"]))
    schemes = list(pd.unique(t["scheme"]))
    variants = list(pd.unique(t["variant"]))
    fig, axes = plt.subplots(
        1,
        len(metric_names),
        figsize=(3.2 * len(metric_names), 0.5 * len(variants) * len(schemes) + 1.5),
        squeeze=False,
    )
    height = 0.8 / max(1, len(schemes))
    for ax, metric in zip(axes[0], metric_names):
        tab = (
            t[t["metric"] == metric]
            .pivot_table(index="variant", columns="scheme", values="delta", aggfunc="first")
            .reindex(index=variants, columns=schemes)
        )
        y = np.arange(len(variants))
        for k, scheme in enumerate(schemes):
            ax.barh(
                y + (k - (len(schemes) - 1) / 2) * height,
                tab[scheme].to_numpy("f8"),
                height,
                label=scheme,
            )
        ax.set_yticks(y, variants, fontsize=8)
        ax.axvline(0, color="k", lw=0.7)
        if metric == "rb":  # relative bias: better towards 0, no side is worse
            ax.set_title("Δ rb (%)", fontsize=10)
        else:
            worse = "worse →" if metric in LOWER_IS_BETTER else "← worse"
            ax.set_title(f"Δ {metric} ({worse})", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0, -1].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------- data helpers
def read_days(
    paths: Sequence[str | os.PathLike], variable: str, days: Sequence | None = None
) -> xr.DataArray | None:
    """``variable`` of yearly files (absent markers skipped), restricted to ``days``.

    Returns None when no file has data.
    """
    from .io import is_absent, read_netcdf

    parts = []
    for f in paths:
        ds = read_netcdf(f)
        if is_absent(ds):
            ds.close()
            continue
        if variable not in ds:
            raise ValueError(f"{f}: no variable {variable!r}; have {list(ds.data_vars)}")
        da = ds[variable]
        if days is not None:
            t = pd.DatetimeIndex(da["time"].values)
            da = da.isel(time=np.flatnonzero(t.isin(pd.DatetimeIndex(days))))
        parts.append(da.load())
        ds.close()
    if not parts:
        return None
    return xr.concat(parts, dim="time") if len(parts) > 1 else parts[0]


def _station_grid_cells(lat: np.ndarray, lon: np.ndarray, stations: pd.DataFrame):
    """``stations`` with the ``row``/``col`` of the cell of a ``(lat, lon)`` grid holding
    each (:func:`gridfuse.samples.station_cells`, as the holdout scores take them; stations
    outside the grid dropped); rows count along ``lat`` in its stored order."""
    from .grid import Grid
    from .samples import station_cells

    lat, lon = np.asarray(lat, dtype="f8"), np.asarray(lon, dtype="f8")
    st = station_cells(Grid.from_coords(lat, lon), stations)
    if lat[0] < lat[-1]:  # south-up storage: Grid rows count from the north
        st["row"] = lat.size - 1 - st["row"]
    return st


def _pairs(name: str, frame: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """``model, station, date, obs, pred`` of a ``(date, station)`` frame of predictions
    on the days the stations observed."""
    long = frame.rename_axis(index="date", columns="station").stack().rename("pred")
    long = long.reset_index()
    obs = daily[["station", "date", "value"]].assign(station=daily["station"].astype(str))
    m = long.merge(obs, on=["station", "date"], how="inner").rename(columns={"value": "obs"})
    return m.assign(model=name)[["model", "station", "date", "obs", "pred"]]


PAIR_COLUMNS = ["model", "station", "date", "obs", "pred"]


def _held_out(stations: pd.DataFrame, roles: Sequence[str]) -> pd.DataFrame:
    return stations[stations["role"].isin(list(roles))] if "role" in stations else stations


def station_pairs(
    fields: Mapping[str, xr.DataArray],
    stations: pd.DataFrame,
    daily: pd.DataFrame,
    *,
    roles: Sequence[str] = ("evaluation",),
) -> pd.DataFrame:
    """``model, station, date, obs, pred``: each field at the cell of each station of the
    given roles (the cell holding the station, as :func:`gridfuse.samples.station_cells`
    finds it; stations outside the grid left out), on the days the station observed.

    The fields are held in memory; :func:`station_pairs_from_files` gives the same pairs
    reading only the stations' cells of yearly files."""
    st = _held_out(stations, roles)
    rows = []
    for name, da in fields.items():
        if da is None or st.empty:
            continue
        cells = _station_grid_cells(da["lat"].values, da["lon"].values, st)
        r, c = cells["row"].to_numpy(), cells["col"].to_numpy()
        vals = np.asarray(da.isel(lat=xr.DataArray(r, dims="s"), lon=xr.DataArray(c, dims="s")))
        frame = pd.DataFrame(
            vals, index=pd.DatetimeIndex(da["time"].values), columns=cells["station"]
        )
        rows.append(_pairs(name, frame, daily))
    if not rows:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    return pd.concat(rows, ignore_index=True)


def station_pairs_from_files(
    files: Mapping[str, Sequence[str | os.PathLike]],
    variable: str,
    stations: pd.DataFrame,
    daily: pd.DataFrame,
    *,
    roles: Sequence[str] = ("evaluation",),
    time_block: int = 32,
) -> pd.DataFrame:
    """:func:`station_pairs` of yearly files (name -> files; absent markers skipped) that
    reads only the storage chunks holding the stations' cells, ``time_block`` days at a
    time (:func:`gridfuse.io.values_at_cells`): a model holds its station-days, not its
    grid.  The pairs are those of :func:`station_pairs` on the files read whole."""
    from .io import read_netcdf, values_at_cells

    st = _held_out(stations, roles)
    rows = []
    for name, paths in files.items():
        usable = _data_files(paths, variable)
        if not usable or st.empty:
            continue
        with read_netcdf(usable[0]) as ds:
            cells = _station_grid_cells(ds["lat"].values, ds["lon"].values, st)
        r, c = cells["row"].to_numpy(), cells["col"].to_numpy()
        times, values = [], []
        for f in usable:
            t, v = values_at_cells(f, variable, r, c, time_block=time_block)
            times.append(t)
            values.append(v)
        frame = pd.DataFrame(
            np.concatenate(values),
            index=pd.DatetimeIndex(np.concatenate(times)),
            columns=cells["station"],
        )
        rows.append(_pairs(name, frame, daily))
    if not rows:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    return pd.concat(rows, ignore_index=True)


def oof_pairs(path: str | os.PathLike, scheme: str) -> tuple[pd.DataFrame, str]:
    """The headline rows (``subset == "all"``) of one scheme of an out-of-fold table
    (``evaluation/so2_oof.parquet``): ``scheme`` when the table has it, else its first
    scheme.  Returns ``(rows, scheme)``.

    The schemes are found one row group at a time and only the scheme's rows are read, so
    the other schemes' rows are never held."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    seen: list[str] = []
    for i in range(pf.num_row_groups):
        group = pf.read_row_group(i, columns=["scheme"])["scheme"].unique().to_pylist()
        seen += [s for s in group if s not in seen]
    if not seen:
        return pd.DataFrame(columns=pf.schema_arrow.names), scheme
    chosen = scheme if scheme in seen else seen[0]
    rows = pd.read_parquet(path, filters=[("scheme", "==", chosen), ("subset", "==", "all")])
    return rows, chosen
