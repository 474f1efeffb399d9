"""Leave-one-gauge-out skill on the RFmerge Valparaiso data: raw CHIRPS, PERSIANN-CDR, RF-MEP.

Reads the real data (../shared/realdata/rfmerge_valparaiso) with the gridfuse readers
(multi-band GeoTIFF products, wide gauge CSV, DEM), builds gauge-day samples at the gauges'
0.05 deg pixels and scores, over all held-out gauge-days pooled:

* the raw products (CHIRPS, PERSIANN-CDR) at the gauge pixel,
* RF-MEP (products + elevation + distances to the training gauges), one forest per left-out
  gauge (34 folds).

References: the same measurement made independently for the task brief (RMSE 6.36 / 5.32 /
4.96 mm/day, KGE 0.32 / 0.31 / 0.47).  Writes results/benchmarks/valparaiso_loo.json and
prints a table; also the median per-gauge KGE.  Skips (exit 0) when the data are absent.

    .venv/bin/python benchmarks/valparaiso_loo.py [--trees 200] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
from _common import ROOT, Bench

from gridfuse import metrics
from gridfuse.models.rf_mep import cross_val_predict, station_samples
from gridfuse.sources.gridded_daily import read_geotiff_daily
from gridfuse.stations.wide import read_wide_csv

DATA = ROOT.parent / "shared" / "realdata" / "rfmerge_valparaiso"
REFERENCE = {  # (rmse, kge) of the independent measurement quoted in the brief
    "chirps": (6.36, 0.32),
    "persiann": (5.32, 0.31),
    "rf_mep": (4.96, 0.47),
}


def load():
    from gridfuse.io import read_geotiff

    days = pd.date_range("1983-01-01", "1983-08-31", freq="D")
    fields = {
        name: read_geotiff_daily(DATA / "original" / f, days, first_date="1983-01-01")
        for name, f in (("chirps", "CHIRPS5km.tif"), ("persiann", "PERSIANNcdr5km.tif"))
    }
    dem = read_geotiff(DATA / "original" / "ValparaisoDEM5km.tif")
    daily, stations = read_wide_csv(
        DATA / "converted" / "ValparaisoPPts.csv",
        DATA / "converted" / "ValparaisoPPgis.csv",
        dem=dem,
    )
    return fields, dem, daily, stations


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--max-features", type=float, default=1 / 3)
    ap.add_argument("--min-leaf", type=int, default=5)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} absent")
        return 0
    fields, dem, daily, stations = load()
    samples = station_samples(fields, dem, stations, daily)
    t0 = time.perf_counter()
    samples["rf_mep"] = cross_val_predict(
        samples,
        ["chirps", "persiann"],
        n_estimators=args.trees,
        n_jobs=args.jobs,
        random_state=0,
        max_features=args.max_features,
        min_samples_leaf=args.min_leaf,
    )
    fit_s = time.perf_counter() - t0
    print(
        f"{len(samples)} gauge-days, {samples['station'].nunique()} gauges; RF-MEP LOGO {fit_s:.0f} s"
    )
    bench = Bench("valparaiso_loo")
    rows = []
    for model in ("chirps", "persiann", "rf_mep"):
        s = metrics.score(samples["obs"], samples[model])
        per_gauge = samples.groupby("station").apply(
            lambda g, m=model: metrics.kge(g["obs"].to_numpy(), g[m].to_numpy())
        )
        rows.append({"model": model, **s, "kge_gauge_median": float(np.nanmedian(per_gauge))})
        ref_rmse, ref_kge = REFERENCE[model]
        bench.add(
            f"{model} LOGO RMSE",
            "mm/day",
            s["rmse"],
            ref_rmse,
            "brief (independent)",
            higher_is_better=False,
        )
        bench.add(f"{model} LOGO KGE", "-", s["kge"], ref_kge, "brief (independent)")
    bench.add("RF-MEP LOGO wall time (34 forests)", "s", fit_s)
    bench.write()
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
