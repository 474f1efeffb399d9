"""Measure the cost model's constants and write ``src/gridfuse/cost_constants.json``.

Two kinds of measurement, both on this machine, in this run:

1. **Kernel rates** (one thread, CPU time by ``time.process_time``): LightGBM fitting per
   row x round x column and prediction per row x round (the SO2 preset's tree settings), the
   compiled trees' (lleaves) prediction against it in the same run and their compile cost, the
   RF-Ps forest per row x tree x column x log2(rows), the LSTM baseline per GMAC, SO2 feature
   building per cell-day x column, MPFM inference and training per GMAC (the preset network).
2. **Workflow calibration**: ``configs/test.yaml`` and ``benchmarks/calibration.yaml`` (a few
   times larger on every axis) run end to end with ``--benchmark-extended``; every job's CPU
   time and max RSS is matched to its :class:`gridfuse.cost.Work` and each rule's fixed cost
   and per-unit coefficients are fitted (:func:`gridfuse.cost.fit_rule_constants`).  Extra
   runs (e.g. the scale rehearsal's folder) can be added with ``--runs``.

3. **GPU rates**: not measured here (this machine has no GPU). The record of
   ``benchmarks/mpfm_predict.py`` run on a GPU machine, kept with where and when it was
   measured under ``benchmarks/devices/`` (``--device``; default
   ``benchmarks/devices/nvidia-h100.json``), is converted to device seconds per GMAC
   (:func:`gridfuse.cost.gpu_constants`) and stored as the constants' ``gpu`` section: the
   plan and the requests price the GPU rules' network kernels with it.

Writes the constants file (with when, where and how it was measured) and
``results/benchmarks/cost_constants.json``: per rule, the fitted model's CPU time and peak
memory against the largest measured job (ratio = measured / modelled).

    python benchmarks/cost_constants.py                 # kernels + both calibration runs
    python benchmarks/cost_constants.py --runs DIR ...  # also fit on finished runs in DIR
    python benchmarks/cost_constants.py --keep-kernels --no-run --runs DIR ...  # refit only
    python benchmarks/cost_constants.py --keep-kernels --kernels lightgbm --kernels-only
    python benchmarks/cost_constants.py --device-only   # only the gpu section, from --device
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, Bench

from gridfuse import cost

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
RUN_CONFIGS = [ROOT / "configs" / "test.yaml", ROOT / "benchmarks" / "calibration.yaml"]
DEVICE = ROOT / "benchmarks" / "devices" / "nvidia-h100.json"


def cpu_time(fn) -> float:
    """CPU seconds (user + system, all threads of this process) of ``fn()``."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def one_thread() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


# ------------------------------------------------------------------------ kernels
def _table(n: int, cols: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, cols)).astype(np.float32)
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] ** 2 + 0.3 * rng.normal(size=n)
    return X, y.astype(np.float32)


def lgbm_params() -> dict:
    """The SO2 preset's LightGBM settings (schema defaults), one thread."""
    from gridfuse.models.so2 import DEFAULT_LIGHTGBM

    return {
        **DEFAULT_LIGHTGBM,
        "learning_rate": 0.05,
        "num_leaves": 255,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "num_threads": 1,
        "verbose": -1,
        "seed": 1,
    }


def kernel_lightgbm(
    sizes=(30_000, 120_000), cols=60, rounds=(20, 60), pred_trees=(60, 300)
) -> dict:
    """LightGBM: seconds per round = cols x (a x rows + b) (histograms scale with the rows,
    the split search of 255 leaves does not); a, b from two table sizes, each the difference
    of two round counts (so the binning of the data is left out)."""
    import lightgbm as lgb

    per_round = []
    for n in sizes:
        X, y = _table(n, cols)
        t = []
        for r in rounds:
            ds = lgb.Dataset(X, y, free_raw_data=False)
            box = []
            t.append(
                cpu_time(lambda r=r, ds=ds, box=box: box.append(lgb.train(lgbm_params(), ds, r)))
            )
        per_round.append((t[1] - t[0]) / (rounds[1] - rounds[0]))
    a = max(0.0, (per_round[1] - per_round[0]) / ((sizes[1] - sizes[0]) * cols))
    b = max(0.0, per_round[0] / cols - a * sizes[0])
    # prediction: the marginal time of a tree, from the same model predicted with two tree
    # counts (a few dozen trees hide how a long model's later, deeper trees and its size in
    # the caches slow each tree down: measured 168 ns at 60 trees, 437 ns from 60 to 400)
    pred_model = lgb.train(lgbm_params(), lgb.Dataset(*_table(sizes[1], cols)), pred_trees[1])
    Xp, _ = _table(50_000, cols, seed=1)
    t_pred = [
        cpu_time(lambda n=n: pred_model.predict(Xp, num_iteration=n, num_threads=1))
        for n in pred_trees
    ]
    pred = max(0.0, (t_pred[1] - t_pred[0]) / (len(Xp) * (pred_trees[1] - pred_trees[0])))
    how = (
        f"lightgbm.train on {sizes[0]} and {sizes[1]} rows x {cols} columns, rounds "
        f"{rounds[1]} minus {rounds[0]} (s per round {per_round[0]:.3f} / {per_round[1]:.3f}), "
        "preset settings (255 leaves, bagging 0.8, feature_fraction 0.8), 1 thread"
    )
    return {
        "lgbm_fit_s_per_row_round_col": {
            "value": a,
            "unit": "CPU s per row x round x column",
            "how": how,
        },
        "lgbm_fit_s_per_round_col": {
            "value": b,
            "unit": "CPU s per round x column (the part not scaling with rows)",
            "how": how,
        },
        "lgbm_predict_s_per_row_round": {
            "value": pred,
            "unit": "CPU s per row x tree",
            "how": f"Booster.predict of {len(Xp)} rows x {cols} columns, trees "
            f"{pred_trees[1]} minus {pred_trees[0]} of a {pred_trees[1]}-round model fitted on "
            f"{sizes[1]} rows (s {t_pred[0]:.2f} / {t_pred[1]:.2f}), 1 thread",
        },
    }


_COMPILE_CHILD = """
import json, resource, sys, time
from gridfuse.models.so2 import compiled
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.process_time()
compiled.compile_trees(sys.argv[1], sys.argv[2])
cpu = time.process_time() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"cpu_s": cpu, "before_mb": before / 1024, "peak_mb": peak / 1024}))
"""


def kernel_lleaves(rows=120_000, cols=60, trees=(60, 300)) -> dict:
    """Compiled trees (model.predictor lleaves) against Booster.predict in the same run, on
    the model kernel_lightgbm predicts with: seconds per row x tree (the marginal time of
    trees ``trees[0]``..``trees[1]``, each count compiled on its own), the compile's CPU
    seconds and peak memory per tree (compile_trees in a child process, as compile_so2 runs
    it), and the largest relative difference of the predictions (NaN in a column)."""
    import lightgbm as lgb

    from gridfuse.models.so2 import load_compiled

    model = lgb.train(lgbm_params(), lgb.Dataset(*_table(rows, cols)), trees[1])
    Xp, _ = _table(50_000, cols, seed=1)
    Xp[::7, 3] = np.nan
    t_lgb, t_ll, child = [], [], []
    with tempfile.TemporaryDirectory(prefix="gridfuse_lleaves_") as tmp:
        for n in trees:
            d = Path(tmp) / str(n)
            d.mkdir()
            model.save_model(str(d / "model.txt"), num_iteration=n)
            got = subprocess.run(
                [sys.executable, "-c", _COMPILE_CHILD, str(d / "model.txt"), str(d / "m.o")],
                capture_output=True,
                text=True,
                check=True,
            )
            child.append(json.loads(got.stdout.strip().splitlines()[-1]))
            ll = load_compiled(d / "model.txt", d / "m.o")
            lg = lgb.Booster(model_file=str(d / "model.txt"))
            t_lgb.append(
                min(cpu_time(lambda lg=lg: lg.predict(Xp, num_threads=1)) for _ in range(2))
            )
            t_ll.append(min(cpu_time(lambda ll=ll: ll.predict(Xp, threads=1)) for _ in range(2)))
        ref = lg.predict(Xp, num_threads=1)
        rel = float(np.max(np.abs(ll.predict(Xp) - ref) / np.abs(ref)))
    units = len(Xp) * (trees[1] - trees[0])
    lgb_rate = (t_lgb[1] - t_lgb[0]) / units
    ll_rate = (t_ll[1] - t_ll[0]) / units
    ratio = lgb_rate / ll_rate
    compile_s = child[1]["cpu_s"] / trees[1]
    compile_mb = max(0.0, child[1]["peak_mb"] - child[1]["before_mb"]) / trees[1]
    model_how = (
        f"{trees[1]}-round model of kernel_lightgbm's settings on {rows} rows x {cols} columns"
    )
    return {
        "lleaves_predict_s_per_row_round": {
            "value": ll_rate,
            "unit": "CPU s per row x tree",
            "ratio_to_booster": ratio,
            "max_rel_diff": rel,
            "how": f"lleaves {_pkg('lleaves')} (llvmlite {_pkg('llvmlite')}, finline False) "
            f"predict of {len(Xp)} rows (every 7th NaN in a column), trees {trees[1]} minus "
            f"{trees[0]} of a {model_how} (s {t_ll[0]:.2f} / {t_ll[1]:.2f}), 1 thread; "
            f"Booster.predict in the same run {lgb_rate * 1e9:.1f} ns per row x tree "
            f"(s {t_lgb[0]:.2f} / {t_lgb[1]:.2f}): {ratio:.2f} x faster; largest relative "
            f"difference {rel:.1e}",
        },
        "lleaves_compile_s_per_tree": {
            "value": compile_s,
            "unit": "CPU s per tree",
            "how": f"compile_trees of the {model_how} in a child process "
            f"({child[1]['cpu_s']:.1f} CPU s; {trees[0]} trees: {child[0]['cpu_s']:.1f} s)",
        },
        "lleaves_compile_mb_per_tree": {
            "value": compile_mb,
            "unit": "MB of peak memory per tree (above the process before compiling)",
            "how": f"compile_trees of the {model_how} in a child process (peak "
            f"{child[1]['peak_mb']:.0f} MB, {child[1]['before_mb']:.0f} MB before)",
        },
    }


def _pkg(name: str) -> str:
    from importlib import metadata

    return metadata.version(name)


def kernel_forest(sizes=(10_000, 40_000), cols=40, trees=10) -> dict:
    """RF-Ps (sklearn): seconds per row x tree x column tried x log2(rows), at the larger of
    two table sizes (the smaller one shows how well n log n holds)."""
    from sklearn.ensemble import RandomForestRegressor

    rates = []
    for n in sizes:
        X, y = _table(n, cols)
        rf = RandomForestRegressor(
            n_estimators=trees, max_features=0.5, min_samples_leaf=2, n_jobs=1, random_state=0
        )
        t = cpu_time(lambda rf=rf, X=X, y=y: rf.fit(X, y))
        rates.append(t / (n * trees * cols * 0.5 * math.log2(n)))
    Xp, _ = _table(100_000, cols, seed=1)
    t_pred = cpu_time(lambda: rf.predict(Xp))
    return {
        "rf_predict_s_per_row_tree": {
            "value": t_pred / (len(Xp) * trees),
            "unit": "CPU s per row x tree",
            "how": f"RandomForestRegressor.predict of {len(Xp)} rows, {trees} trees grown on "
            f"{sizes[1]} rows, 1 thread",
        },
        "rf_fit_s_per_row_tree_col": {
            "value": rates[-1],
            "unit": "CPU s per row x tree x column tried x log2(rows)",
            "how": f"RandomForestRegressor.fit, {sizes[1]} rows x {cols} columns, {trees} "
            f"trees, max_features 0.5, min_samples_leaf 2, 1 thread (at {sizes[0]} rows: "
            f"{rates[0]:.3g})",
        },
    }


def kernel_lstm(n=4000, cols=40, hidden=32, layers=2, seq=7, epochs=2) -> dict:
    from gridfuse.models.lstm import LSTMRegressor

    rng = np.random.default_rng(0)
    S = rng.normal(size=(n, seq, cols)).astype(np.float32)
    y = S[:, -1, 0] + 0.1 * rng.normal(size=n).astype(np.float32)
    m = LSTMRegressor(hidden=hidden, layers=layers, epochs=epochs, threads=1)
    t = cpu_time(lambda: m.fit(S, y))
    gmac = n * epochs * seq * layers * 4 * hidden * (hidden + cols) * 3 / 1e9
    return {
        "lstm_fit_s_per_gmac": {
            "value": t / gmac,
            "unit": "CPU s per GMAC (4 gates x hidden x (hidden + inputs) x steps x 3)",
            "how": f"LSTMRegressor.fit, {n} sequences of {seq} x {cols}, hidden {hidden}, "
            f"{layers} layers, {epochs} epochs, 1 thread",
        }
    }


def kernel_so2_features(cells=120, days=4) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    import _so2_fixtures
    from _so2_fixtures import make_inputs

    from gridfuse.features import FeatureConfig, attach_values, station_frame, station_pixels
    from gridfuse.grid import Grid
    from gridfuse.models.registry import make
    from gridfuse.models.so2 import ModelSettings, predict_blocks

    grid = Grid(
        west=112.0, south=37.0, east=112.0 + cells * 0.01, north=37.0 + cells * 0.01, res=0.01
    )
    _so2_fixtures.GRID = grid
    dyn, static, stations, daily = make_inputs(n_days=30, n_stations=40)
    fcfg = FeatureConfig(seed=1)
    px = station_pixels(stations, grid)
    frame = attach_values(station_frame(dyn, static, px, fcfg), daily, px)
    settings = ModelSettings.from_config(
        {"lightgbm": {"num_boost_round": 1, "valid_fraction": 0.0}}, threads=1
    )
    model = make("so2", "lightgbm", params=settings, features=fcfg, grid=grid).fit(frame)
    dyn = dyn.isel(time=slice(0, days)).load()

    def run():
        for _ in predict_blocks(model, dyn, static, tile=64, time_block=days):
            pass

    run()  # warm-up
    t = cpu_time(run)
    cols = len(model.columns) + 10  # as cost._so2_columns counts them
    return {
        "so2_features_s_per_value": {
            "value": t / (grid.size * days * cols),
            "unit": "CPU s per cell-day x feature-table column",
            "how": f"predict_blocks of a 1-tree model over {cells}x{cells} cells x {days} days, "
            f"{len(model.columns)} features (preset feature set), tile 64, 1 thread",
        }
    }


def _mpfm_model(n_src: int, sizes: dict):
    from gridfuse.models.mpfm import MPFM, MPFMConfig
    from gridfuse.models.train import FusionModel, Standardizer

    chans = [f"s{i}" for i in range(n_src)] + ["elevation", "lat", "lon"]
    net = MPFM(MPFMConfig.variant("mpfm", len(chans), **sizes)).eval()
    std = Standardizer(chans, [True] * n_src + [False] * 3, [0.0] * len(chans), [1.0] * len(chans))
    return FusionModel([net], std, name="mpfm"), chans


def kernel_mpfm_predict(cells=96, days=16, n_src=5) -> dict:
    import pandas as pd

    from gridfuse.predict import predict_grid

    mpfm_cfg = {"predict_tile": 128, "predict_days": days}
    model, chans = _mpfm_model(n_src, {"window": 7})
    rng = np.random.default_rng(0)

    def read(span):
        return rng.gamma(0.5, 2.0, (len(span), len(chans), cells, cells)).astype("f4")

    days_ix = pd.date_range("2020-01-01", periods=days)

    def run():
        for _ in predict_grid(model, read, days_ix, tile=128, time_block=days, device="cpu"):
            pass

    run()
    t = cpu_time(run)
    macs, radius = cost.mpfm_macs_per_cell_day(mpfm_cfg, len(chans), 7)
    halo = ((128 + 2 * radius) / 128) ** 2
    gmac = cells * cells * days * macs * halo / 1e9
    return {
        "mpfm_predict_s_per_gmac": {
            "value": t / gmac,
            "unit": "CPU s per GMAC (cost.mpfm_macs_per_cell_day x tile halo)",
            "how": f"predict_grid, preset MPFM ({macs / 1e3:.0f} kMAC per cell-day), "
            f"{cells}x{cells} cells x {days} days, 1 thread",
            "cell_days_per_cpu_s": cells * cells * days / t,
        }
    }


def kernel_mpfm_train(stations=40, days=200, n_src=5, samples=512) -> dict:
    from gridfuse.models.train import TrainConfig, train_fusion

    rng = np.random.default_rng(0)
    chans = [f"s{i}" for i in range(n_src)] + ["elevation", "lat", "lon"]
    x = rng.gamma(0.5, 2.0, (stations, days, 15, 15, len(chans))).astype("f4")
    y = x[:, :, 7, 7, 0] + 0.1 * rng.random((stations, days)).astype("f4")
    fit, val = np.arange(0, 32), np.arange(32, 40)
    tc = TrainConfig(epochs=1, samples_per_epoch=samples, device="cpu", seeds=[0], patience=5)
    t = cpu_time(
        lambda: train_fusion(
            x, y, chans, fit, val, sizes={"window": 7}, train=tc, log_channels=chans[:n_src]
        )
    )
    product = {
        "kind": "precip",
        "grid": {"west": 0, "south": 0, "east": 1, "north": 1, "res": 0.01},
        "period": {"start": "2020-01-01", "end": str(dt.date(2020, 1, 1) + dt.timedelta(days - 1))},
        "synthetic": {"enabled": True, "n_stations": stations},
        "sources": {f"s{i}": {"format": "era5"} for i in range(n_src)},
        "samples": {"window_days": 7, "patch": 15},
        "model": {"mpfm": {"epochs": 1, "samples_per_epoch": samples, "val_fraction": 0.2}},
    }
    gmac = cost._train_gmac(cost.Product(product), "mpfm", n_src)
    return {
        "mpfm_train_s_per_gmac": {
            "value": t / gmac,
            "unit": "CPU s per GMAC (cost model's training count)",
            "how": f"train_fusion, preset MPFM, 1 epoch of {samples} samples (15x15 patches, "
            f"{stations} stations x {days} days), 1 thread",
        }
    }


def kernel_global_files(n_files=6) -> dict:
    """Seconds per file of reading the real products' **global** files (written at their
    full native extent, compressed, by the library's writers) for the Qinghai region: real
    archives hold global files, the synthetic runs region-cropped ones."""
    import pandas as pd

    from gridfuse.daily import DayWindow
    from gridfuse.grid import Grid
    from gridfuse.sources import READERS, cmorph, gldas, gsmap, imerg

    grid = Grid(west=89.5, south=31.37, east=103.4, north=39.87, res=0.01)
    rng = np.random.default_rng(0)
    day = pd.Timestamp("2020-07-01")
    bbox = grid.padded(0.5).bounds  # the region plus the sources' default margin
    out = {}
    with tempfile.TemporaryDirectory(prefix="gridfuse_global_") as tmp:
        for fmt in ("imerg_hhr", "cmorph", "gldas", "gsmap_hourly"):
            folder = Path(tmp) / fmt
            for i in range(n_files):
                if fmt == "imerg_hhr":
                    t = day + pd.Timedelta(minutes=30 * i)
                    lat, lon = (
                        np.round(89.95 - 0.1 * np.arange(1800), 4),
                        np.round(-179.95 + 0.1 * np.arange(3600), 4),
                    )
                    rate = rng.gamma(0.3, 2.0, (lat.size, lon.size)).astype("f4")
                    f = folder / f"{t.day_of_year:03d}" / imerg.hhr_name(t)
                    f.parent.mkdir(parents=True, exist_ok=True)
                    imerg.write_imerg_hhr(f, t, lat, lon, rate)
                elif fmt == "cmorph":
                    t = day + pd.Timedelta(hours=i)
                    lat, lon = cmorph.LAT[::-1], cmorph.LON
                    rate = rng.gamma(0.3, 2.0, (2, lat.size, lon.size)).astype("f4")
                    f = folder / f"{t:%m}" / f"{t:%d}" / cmorph.cmorph_name(t)
                    f.parent.mkdir(parents=True, exist_ok=True)
                    cmorph.write_cmorph(f, t, lat, lon, rate)
                elif fmt == "gldas":
                    t = day + pd.Timedelta(hours=3 * (i + 1))
                    lat, lon = gldas.LAT[::-1], gldas.LON
                    rate = (rng.gamma(0.3, 2.0, (lat.size, lon.size)) / 10800).astype("f4")
                    f = folder / f"{t.day_of_year:03d}" / gldas.gldas_name(t)
                    f.parent.mkdir(parents=True, exist_ok=True)
                    gldas.write_gldas(f, t, lat, lon, rate)
                else:
                    t = day + pd.Timedelta(hours=i)
                    lat, lon = gsmap.LAT, gsmap.LON
                    rate = rng.gamma(0.3, 2.0, (lat.size, lon.size)).astype("f4")
                    f = folder / f"{t:%m}" / f"{t:%d}" / gsmap.hourly_name(t)
                    f.parent.mkdir(parents=True, exist_ok=True)
                    gsmap.write_gsmap_binary(f, lat, lon, rate)
            t = cpu_time(
                lambda fmt=fmt, folder=folder: READERS[fmt](
                    [folder], pd.DatetimeIndex([day]), DayWindow(0), bbox
                )
            )
            out[f"ingest_s_per_file.{fmt}"] = {
                "value": t / n_files,
                "unit": "CPU s per global file (Qinghai region read)",
                "how": f"the {fmt} reader on {n_files} global files written compressed "
                "at the full native extent by gridfuse.sources writers, 1 thread",
            }
    return out


def kernel_product_read(ny=850, nx=1390, days=32, stations=60) -> dict:
    """Reading a product file's values at station cells (gridfuse.io.values_at_cells): CPU s
    per grid cell-day of the file, on a Qinghai-size grid written as the workflow writes
    products (float32, zlib, one-day chunks of 512 x 512 cells, quality layer beside)."""
    import pandas as pd

    from gridfuse.io import values_at_cells, write_netcdf_blocks

    rng = np.random.default_rng(0)
    lat = 39.5 - 0.01 * (np.arange(ny) + 0.5)
    lon = 89.4 + 0.01 * (np.arange(nx) + 0.5)
    times = pd.date_range("2020-01-01", periods=days, freq="D").values

    def blocks():  # patchy rain: smooth cells of ~50 km with zeros around, some noise
        for a in range(0, days, 8):
            n = min(8, days - a)
            coarse = rng.gamma(0.5, 2.0, (n, ny // 50 + 2, nx // 50 + 2)).astype(np.float32)
            up = np.repeat(np.repeat(coarse, 50, 1), 50, 2)[:, :ny, :nx]
            noise = 0.3 * rng.standard_normal((n, ny, nx)).astype(np.float32)
            yield slice(a, a + n), np.maximum(up - 0.8 + noise, 0), np.full((n, ny, nx), 7, "u1")

    cells = rng.choice(ny * nx, stations, replace=False)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "product.nc"
        write_netcdf_blocks(
            path, "precip", blocks(), times=times, lat=lat, lon=lon, flag_sources=["a", "b", "c"]
        )
        values_at_cells(path, "precip", cells // nx, cells % nx)  # warm the page cache
        t = min(
            cpu_time(lambda: values_at_cells(path, "precip", cells // nx, cells % nx))
            for _ in range(3)
        )
    return {
        "product_read_s_per_cell_day": {
            "value": t / (ny * nx * days),
            "unit": "CPU s per grid cell-day of a product file",
            "how": f"values_at_cells of {stations} random cells from a {ny}x{nx}x{days}-day "
            "product file (write_netcdf_blocks layout, with quality layer), best of 3, 1 thread",
        }
    }


KERNELS = [
    kernel_lightgbm,
    kernel_lleaves,
    kernel_forest,
    kernel_lstm,
    kernel_so2_features,
    kernel_mpfm_predict,
    kernel_mpfm_train,
    kernel_global_files,
    kernel_product_read,
]


# ------------------------------------------------------------------------ workflow runs
def run_workflow(config: Path, workdir: Path, cores: int, constants: Path) -> Path:
    """Run the workflow on ``config`` in ``workdir`` with extended benchmark records.

    The run's own requests come from ``constants`` (provisional: only local scheduling uses
    them); what is measured is each job's CPU time and max RSS.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(SNAKEMAKE),
        "--cores",
        str(cores),
        "-s",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(config),
        "--directory",
        str(workdir),
        "--benchmark-extended",
    ]
    print("running", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    env = {**os.environ, "GRIDFUSE_COST_CONSTANTS": str(constants)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    (workdir / "run.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{config} failed; see {workdir / 'run.log'}")
    (workdir / "configfile").write_text(str(config))
    print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    return workdir


def products_of(config: Path) -> dict:
    import yaml
    from snakemake.utils import validate

    cfg = yaml.safe_load(config.read_text())
    validate(cfg, str(SCHEMA))
    return cfg["products"]


def measured_jobs(run_dir: Path) -> list[tuple]:
    """(Work, cpu_s, max_rss) of every benchmarked job of a finished run."""
    products = products_of(Path((run_dir / "configfile").read_text().strip()))
    out = []
    for rec in cost.read_benchmarks(run_dir):
        product = rec["wildcards"].get("product")
        if product not in products:
            continue
        try:
            # at the threads the job ran with (inside a SLURM job Snakemake may give fewer)
            w = cost.work(rec["rule"], products[product], rec["wildcards"], threads=rec["threads"])
        except cost.NoCostModel:  # a rule renamed or removed since the run
            print(f"  skipped {rec['path']}: no cost model for rule {rec['rule']!r}")
            continue
        out.append((w, rec["cpu_s"], rec["max_rss"]))
    return out


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit,
        "command": "make bench (python benchmarks/cost_constants.py)",
    }


def partial_record(args, **extra) -> dict:
    """Provenance of a partial update of --out (re-measured kernels, refitted rules): the
    machine, the command line as given, the kernels re-measured, the load, ``--note``."""
    rec = {
        **machine(),
        "command": "python benchmarks/cost_constants.py " + shlex.join(sys.argv[1:]),
        **extra,
        "kernels": list(args.kernels or []),
        "load_average": os.getloadavg()[0],
    }
    if args.note:
        rec["note"] = args.note
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="*", default=[], type=Path, help="finished run folders")
    ap.add_argument("--no-run", action="store_true", help="fit on --runs only")
    ap.add_argument("--workdir", type=Path, default=None, help="where to run (default: a temp dir)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", type=Path, default=cost.CONSTANTS_FILE)
    ap.add_argument(
        "--keep-kernels", action="store_true", help="reuse the kernel rates of --out (refit only)"
    )
    ap.add_argument(
        "--kernels",
        nargs="*",
        default=None,
        help="with --keep-kernels: re-measure only these kernels (e.g. lightgbm)",
    )
    ap.add_argument(
        "--kernels-only",
        action="store_true",
        help="with --kernels: write the re-measured kernels into --out, keeping its rule fits",
    )
    ap.add_argument(
        "--rules",
        nargs="*",
        default=None,
        help="with --keep-kernels --no-run: refit only these rule keys on --runs, keeping the "
        "other fits of --out",
    )
    ap.add_argument(
        "--note",
        default="",
        help="with --kernels-only or --rules: what the runs or kernels were, kept in the record",
    )
    ap.add_argument(
        "--device", type=Path, default=DEVICE, help="GPU record (benchmarks/devices/*.json)"
    )
    ap.add_argument(
        "--device-only",
        action="store_true",
        help="only (re)write the gpu section of --out from --device; nothing is measured",
    )
    args = ap.parse_args()

    gpu = cost.gpu_constants(json.loads(args.device.read_text())) if args.device else {}
    if gpu:
        gpu["file"] = str(args.device.resolve().relative_to(ROOT))
    if args.device_only:
        data = json.loads(args.out.read_text())
        data["gpu"] = gpu
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        for name, rec in gpu.get("kernels", {}).items():
            print(f"{name:36s} {rec['value']:.4g}  ({rec['how']})")
        print(f"wrote the gpu section of {args.out} from {args.device}")
        return

    one_thread()
    kernels = {}
    if args.keep_kernels:
        kernels = json.loads(args.out.read_text())["kernels"]
    todo = KERNELS
    if args.keep_kernels:
        todo = [fn for fn in KERNELS if fn.__name__.removeprefix("kernel_") in (args.kernels or [])]
    for fn in todo:
        t0 = time.perf_counter()
        got = fn()
        kernels.update(got)
        for name, rec in got.items():
            print(f"{name:36s} {rec['value']:.4g}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    k = cost.Constants({"kernels": kernels})
    if args.kernels_only:
        data = json.loads(args.out.read_text())
        data["kernels"] = kernels
        measured = data.setdefault("measured", {})
        earlier = measured.get("kernels_remeasured", [])  # one record per partial run
        earlier = [earlier] if isinstance(earlier, dict) else list(earlier)
        measured["kernels_remeasured"] = [*earlier, partial_record(args)]
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote the kernels {args.kernels} into {args.out} (rule fits kept)")
        return

    runs = list(args.runs)
    if not args.no_run:
        base = args.workdir or Path(tempfile.mkdtemp(prefix="gridfuse_cost_"))
        base.mkdir(parents=True, exist_ok=True)
        # provisional constants for the calibration runs' own (local) requests
        provisional = base / "provisional_constants.json"
        provisional.write_text(
            json.dumps(
                {"kernels": kernels, "rules": {"default": {"fixed_s": 600, "fixed_mb": 1000}}}
            )
        )
        for config in RUN_CONFIGS:
            runs.append(run_workflow(config, base / config.stem, args.cores, provisional))
    jobs = [j for r in runs for j in measured_jobs(r)]
    if args.rules is not None:  # refit only the named rule keys; keep everything else
        jobs = [j for j in jobs if j[0].key in args.rules]
        unseen = sorted(set(args.rules) - {j[0].key for j in jobs})
        if unseen:
            sys.exit(f"--rules {unseen}: no measured job of these rule keys in --runs")
        data = json.loads(args.out.read_text())
        data["kernels"] = kernels
        # another rule's coefficients (r:<rule>:<term>) come from the fits kept in --out
        known = cost.Constants({"kernels": kernels, "rules": data["rules"]})
        data["rules"].update(cost.fit_rule_constants(jobs, known))
        data["measured"].setdefault("rules_refitted", []).append(
            partial_record(args, rules=list(args.rules), jobs=len(jobs))
        )
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"refitted {args.rules} on {len(jobs)} jobs into {args.out}")
        rules = {r: data["rules"][r] for r in args.rules if r in data["rules"]}
    else:
        rules = cost.fit_rule_constants(jobs, k)
        data = {
            "version": 1,
            "measured": {**machine(), "runs": [str(r) for r in runs], "jobs": len(jobs)},
            "kernels": kernels,
            "gpu": gpu,
            "rules": rules,
        }
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        print(
            f"wrote {args.out}: {len(kernels)} kernel rates, {len(rules)} rule keys, "
            f"{len(jobs)} jobs"
        )

    bench = Bench("cost_constants")
    full = cost.Constants(data)

    def on_cpus(w):
        # the runs ran their networks on CPUs, as the fit assumes (it subtracts the CPU kernel
        # rates): price them so, not on the GPU that GRIDFUSE_SLURM_GPUS gives a cluster job
        return cost.price(dataclasses.replace(w, gpu=False), full)

    for key in rules:
        rows = [j for j in jobs if j[0].key == key]
        if not rows:
            continue
        w, cpu, rss = max(rows, key=lambda j: j[1])
        est = on_cpus(w)
        bench.add(
            f"{key} CPU time (largest job)",
            "s",
            ours=est.cpu_s,
            reference=cpu,
            reference_name="measured",
            higher_is_better=False,
        )
        w, cpu, rss = max(rows, key=lambda j: j[2])
        est = on_cpus(w)
        bench.add(
            f"{key} peak memory (largest job)",
            "MB",
            ours=est.peak_mb,
            reference=rss,
            reference_name="measured max_rss",
            higher_is_better=False,
            request_mb=est.mem_mb(),
        )
    bench.write()


if __name__ == "__main__":
    main()
