"""SO2 prediction throughput, as ratios against raw ``Booster.predict`` in the same run.

Trains the full model (random IDs, spatial sampling, parameter convolution 64/16) on a
synthetic station table, then measures on the same feature matrix and grid:

- ``predict from features``: ``SO2Model.predict_matrix`` vs ``lightgbm.Booster.predict``
  (goal: ratio >= 0.9);
- ``feature building``: the tile's sample frame and feature matrix (``tile_frame`` +
  ``FeatureBuilder.transform``), rows per second, vs the raw predict's rows per second;
- ``parameter convolution``: the vectorized kernel (``ParameterConvolution.transform``) vs
  the per-kernel loop it replaced (kept here as the reference);
- ``tiled grid prediction``: :func:`predict_blocks` end to end (fields, features, predict)
  on ``--threads`` tiles side by side, with a domain mask covering ``--inside`` of the grid,
  in cell-days (inside) per second vs the raw predict's rows per second; its peak memory;
- with ``--compiled tl2cgen lleaves``: compiled trees (treelite/tl2cgen through gcc; lleaves
  through LLVM, ``finline=False``) vs ``Booster.predict`` on the same matrix, one thread, and
  the largest relative difference of their predictions (adopted only if faster and within
  1e-6), and the compile's wall time and CPU time (gcc's child processes included). Neither
  is a dependency: each is skipped when it is not importable.

Also prints the per-row cost facts of the SO2 jobs (ns per row per tree of the predict,
feature rows per CPU-second) for the cost model. Writes results/benchmarks/so2_predict.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _so2_fixtures  # noqa: E402
from _common import Bench, PeakRSS, best_time  # noqa: E402
from _so2_fixtures import make_inputs  # noqa: E402

from gridfuse.features import (  # noqa: E402
    FeatureConfig,
    attach_values,
    station_frame,
    station_pixels,
    tile_frame,
)
from gridfuse.grid import Grid  # noqa: E402
from gridfuse.models.registry import make  # noqa: E402
from gridfuse.models.so2 import ModelSettings, predict_blocks  # noqa: E402


def loop_conv_pool(x: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """The per-kernel loop of the parameter convolution before vectorization (reference)."""
    n, f = x.shape
    k, w = kernels.shape
    npos = f - w + 1
    out = np.empty((n, k), dtype=np.float32)
    for j in range(k):
        acc = kernels[j, 0] * x[:, 0:npos]
        for t in range(1, w):
            acc = acc + kernels[j, t] * x[:, t : t + npos]
        out[:, j] = np.tanh(acc).mean(axis=1)
    return out


def cpu_time(fn, repeat: int = 2) -> float:
    """Best CPU time (s, this process, all threads) of ``repeat`` calls after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def _cpu_with_children() -> float:
    """CPU seconds of this process and of its finished children (tl2cgen compiles in gcc
    processes, which ``time.process_time`` does not see; lleaves compiles in this process)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _compile_tl2cgen(path: Path, d: str):
    import tl2cgen
    import treelite

    lib = str(Path(d) / "model.so")
    tm = treelite.frontend.load_lightgbm_model(str(path))
    tl2cgen.export_lib(tm, toolchain="gcc", libpath=lib, params={"parallel_comp": 2})
    pred = tl2cgen.Predictor(lib, nthread=1)
    return lambda X: np.asarray(pred.predict(tl2cgen.DMatrix(X, dtype="float32"))).ravel()


def _compile_lleaves(path: Path, d: str):
    import lleaves

    m = lleaves.Model(model_file=str(path))
    # inlining makes LLVM's compile of 255-leaf trees take many minutes and GBs
    m.compile(cache=str(Path(d) / "model.o"), finline=False)
    return lambda X: m.predict(np.asarray(X, dtype=np.float64), n_jobs=1)


def compiled_trees(bench: Bench, booster, X: np.ndarray, t_raw: float, rows: int, which) -> None:
    """Compiled trees against Booster.predict (same matrix, one thread, CPU time)."""
    compilers = {"tl2cgen": _compile_tl2cgen, "lleaves": _compile_lleaves}
    ref = booster.predict(X, num_threads=1)
    for name in which:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "model.txt"
            booster.save_model(str(path))
            w0, c0 = time.perf_counter(), _cpu_with_children()
            try:
                predict = compilers[name](path, d)
            except ImportError as e:
                print(f"{name} not installed ({e}): skipped")
                continue
            compile_cpu_s = _cpu_with_children() - c0
            compile_wall_s = time.perf_counter() - w0
            t = cpu_time(lambda predict=predict: predict(X))
            p = predict(X)
        rel = float(np.max(np.abs(p - ref) / np.maximum(np.abs(ref), 1e-12)))
        bench.add(
            f"compiled trees ({name}, 1 thread)",
            "Mrow/cpu-s",
            ours=rows / t / 1e6,
            reference=rows / t_raw / 1e6,
            reference_name="lightgbm Booster.predict (1 thread)",
            max_rel_diff=rel,
            within_1e6=rel <= 1e-6,
            compile_cpu_s=compile_cpu_s,
            compile_wall_s=compile_wall_s,
            trees=booster.num_trees(),
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=160, help="grid edge in cells")
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--inside", type=float, default=0.43, help="share of the grid in the mask")
    ap.add_argument(
        "--compiled",
        nargs="*",
        default=[],
        choices=["tl2cgen", "lleaves"],
        help="also time compiled trees (each only when installed)",
    )
    args = ap.parse_args()

    n = args.cells
    grid = Grid(west=112.0, south=37.0, east=112.0 + n * 0.01, north=37.0 + n * 0.01, res=0.01)
    _so2_fixtures.GRID = grid
    dyn, static, stations, daily = make_inputs(n_days=max(args.days, 30), n_stations=40)
    cfg = FeatureConfig(seed=1)
    px = station_pixels(stations, grid)
    frame = attach_values(station_frame(dyn, static, px, cfg), daily, px)
    settings = ModelSettings.from_config(
        {"lightgbm": {"num_boost_round": args.rounds, "min_data_in_leaf": 20}},
        threads=args.threads,
    )
    model = make("so2", "lightgbm", params=settings, features=cfg, grid=grid).fit(frame)
    dyn = dyn.isel(time=slice(0, args.days)).load()
    rows = args.days * grid.size
    trees = model.booster.num_trees()
    print(f"model: {trees} trees, {len(model.columns)} features; {rows} rows")

    def features():
        return model.builder.transform(
            tile_frame(dyn, static, cfg, slice(None), slice(None), slice(None))
        )

    X = features()
    bench = Bench("so2_predict")
    t_raw = best_time(lambda: model.booster.predict(X, num_threads=args.threads), repeat=3)
    t_ours = best_time(lambda: model.predict_matrix(X), repeat=3)
    bench.add(
        "predict from features",
        "Mrow/s",
        ours=rows / t_ours / 1e6,
        reference=rows / t_raw / 1e6,
        reference_name="lightgbm Booster.predict",
        rows=rows,
        features=len(model.columns),
        threads=args.threads,
    )
    # one-thread CPU costs: the facts the cost model prices jobs with
    t_raw1 = cpu_time(lambda: model.booster.predict(X, num_threads=1))
    t_feat = cpu_time(features)
    bench.add(
        "feature building (tile frame + matrix, 1 thread)",
        "Mrow/cpu-s",
        ours=rows / t_feat / 1e6,
        reference=rows / t_raw1 / 1e6,
        reference_name="lightgbm Booster.predict (1 thread)",
        ns_per_row_per_tree=t_raw1 / rows / trees * 1e9,
        trees=trees,
    )
    b = model.builder
    day0 = tile_frame(dyn, static, cfg, slice(0, 1), slice(None), slice(None))
    xb = b.base_matrix(day0)[:, b.conv_input_index]

    def loop():
        z = b.conv.normalize(xb)
        loop_conv_pool(loop_conv_pool(z, b.conv.k1), b.conv.k2)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        t_loop = cpu_time(loop)
        t_vec = cpu_time(lambda: b.conv.transform(xb))
    z = xb
    bench.add(
        "parameter convolution (1 thread)",
        "Mrow/cpu-s",
        ours=len(z) / t_vec / 1e6,
        reference=len(z) / t_loop / 1e6,
        reference_name="per-kernel numpy loop (before)",
        inputs=int(z.shape[1]),
    )

    mask = np.zeros(grid.shape, bool)
    mask[: max(1, int(round(args.inside * grid.nlat))), :] = True
    inside_days = int(mask.sum()) * args.days

    def grid_predict(m=None, threads=args.threads):
        for _ in predict_blocks(
            model, dyn, static, tile=args.tile, time_block=args.days, mask=m, threads=threads
        ):
            pass

    t_one = best_time(lambda: grid_predict(None, 1), repeat=1, warmup=0)
    with PeakRSS() as mem:
        t_grid = best_time(lambda: grid_predict(mask), repeat=1, warmup=0)
    bench.add(
        "tiled grid prediction, whole grid, 1 thread (features + predict)",
        "Mcell-day/s",
        ours=rows / t_one / 1e6,
        reference=rows / t_raw / 1e6,
        reference_name="lightgbm Booster.predict (features given)",
        tile=args.tile,
    )
    bench.add(
        f"tiled grid prediction, mask ({args.inside:.0%} inside), {args.threads} threads",
        "Mcell-day/s",
        ours=inside_days / t_grid / 1e6,
        reference=rows / t_raw / 1e6,
        reference_name="lightgbm Booster.predict (features given)",
        tile=args.tile,
        threads=args.threads,
        grid_cell_days_per_s=rows / t_grid,
    )
    bench.add(
        "tiled grid prediction peak memory above start",
        "MB",
        ours=mem.delta_mb,
        reference=None,
        reference_name="",
        higher_is_better=False,
    )
    if args.compiled:
        # on the cost model's LightGBM kernel model (preset tree settings: 255 leaves, 300
        # rounds on 120,000 rows x 60 columns; the fixture's model above has small trees),
        # 50,000 rows with a missing value in every 7th row of one column
        import lightgbm as lgb
        from cost_constants import _table, lgbm_params

        kern = lgb.train(lgbm_params(), lgb.Dataset(*_table(120_000, 60)), args.rounds)
        Xk, _ = _table(50_000, 60, seed=1)
        Xk[::7, 3] = np.nan
        t_k = cpu_time(lambda: kern.predict(Xk, num_threads=1))
        compiled_trees(bench, kern, Xk, t_k, len(Xk), args.compiled)
    bench.write()


if __name__ == "__main__":
    main()
