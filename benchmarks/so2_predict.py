"""SO2 prediction throughput: our prediction path against raw ``Booster.predict``.

Trains the full model (random IDs, spatial sampling, parameter convolution 64/16) on a
synthetic station table, then, in the same run and on the same feature matrix:

- ``predict from features``: ``SO2Model.predict_matrix`` (threads, clipping, float32)
  vs ``lightgbm.Booster.predict`` -- goal: within 10 % (ratio >= 0.9);
- ``tiled grid prediction``: :func:`predict_blocks` end to end (reading the fields,
  neighbourhood means, convolution features, prediction) vs the same raw predict, to show
  what feature building costs; plus its peak memory.

Writes results/benchmarks/so2_predict.json (see benchmarks/_common.py).
"""

from __future__ import annotations

import argparse
import sys
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
from gridfuse.models.so2 import ModelSettings, make_model, predict_blocks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=160, help="grid edge in cells")
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile", type=int, default=256)
    args = ap.parse_args()

    n = args.cells
    grid = Grid(west=112.0, south=37.0, east=112.0 + n * 0.01, north=37.0 + n * 0.01, res=0.01)
    _so2_fixtures.GRID = grid
    dyn, static, stations, daily = make_inputs(n_days=max(args.days, 30), n_stations=40)
    cfg = FeatureConfig(seed=1)
    px = station_pixels(stations, grid)
    frame = attach_values(station_frame(dyn, static, px, cfg), daily, px)
    settings = ModelSettings.from_config(
        {"lightgbm": {"num_boost_round": 300, "min_data_in_leaf": 20}}, threads=args.threads
    )
    model = make_model("lightgbm", cfg, grid, settings).fit(frame)
    dyn = dyn.isel(time=slice(0, args.days)).load()
    rows = args.days * grid.size
    print(f"model: {model.booster.num_trees()} trees, {len(model.columns)} features; {rows} rows")

    X = model.builder.transform(tile_frame(dyn, static, cfg, slice(None), slice(None), slice(None)))
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

    def grid_predict():
        for _ in predict_blocks(model, dyn, static, tile=args.tile, time_block=args.days):
            pass

    with PeakRSS() as mem:
        t_grid = best_time(grid_predict, repeat=1, warmup=0)
    bench.add(
        "tiled grid prediction (features + predict)",
        "Mrow/s",
        ours=rows / t_grid / 1e6,
        reference=rows / t_raw / 1e6,
        reference_name="lightgbm Booster.predict (features given)",
        tile=args.tile,
    )
    bench.add(
        "tiled grid prediction peak memory above start",
        "MB",
        ours=mem.delta_mb,
        reference=None,
        reference_name="",
        higher_is_better=False,
    )
    x_mb = X.nbytes / 2**20
    print(f"(the full feature matrix alone is {x_mb:.0f} MB)")
    bench.write()
    assert np.isfinite(t_grid)


if __name__ == "__main__":
    main()
