"""The precipitation pipeline on real data: RFmerge's Valparaiso gauges, CHIRPS and PERSIANN-CDR.

Runs configs/valparaiso_precip.yaml (shrunk: every gauge in 3 site_cv folds, one epoch,
few trees) in a temporary directory and checks scores.csv: every model, baseline and raw product under site_cv, with
the raw products' skill equal to the independent leave-one-gauge-out measurement (the
raw products need no fitting, so folds do not change their scores).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CONFIG = ROOT / "configs" / "valparaiso_precip.yaml"


PREFIX = "../shared/realdata/"


def _config(realdata: Path) -> dict:
    """The config with its ../shared/realdata/ paths made absolute (to ``realdata``)."""
    cfg = yaml.safe_load(CONFIG.read_text())
    p = cfg["products"]["valparaiso_precip"]

    def fix(path: str) -> str:
        assert path.startswith(PREFIX), path
        return str(realdata / path.removeprefix(PREFIX))

    for s in p["sources"].values():
        s["path"] = fix(s["path"])
    for key in ("path", "table"):
        p["stations"][key] = fix(p["stations"][key])
    p["static"]["dem"] = fix(p["static"]["dem"])
    return cfg


def test_config_points_at_the_shared_data_and_validates(realdata):
    cfg = yaml.safe_load(CONFIG.read_text())
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    p = cfg["products"]["valparaiso_precip"]
    assert "site_cv" in p["cv"]["schemes"] and "rf_mep" in p["model"]["baselines"]["models"]
    for path in _config(realdata)["products"]["valparaiso_precip"]["sources"].values():
        assert Path(path["path"]).is_file(), path
    assert {s["format"] for s in p["sources"].values()} == {"geotiff_daily", "netcdf_daily"}


@pytest.mark.slow
def test_pipeline_scores_on_real_data(realdata, tmp_path):
    cfg = _config(realdata)
    p = cfg["products"]["valparaiso_precip"]
    # every gauge in 3 leave-stations-out folds, MPFM retrained in each (tiny training)
    p["stations"]["evaluation"] = {"count": 0}
    p["model"]["mpfm"].update(epochs=1, patience=1, samples_per_epoch=300)
    p["model"]["baselines"] = {
        "models": ["owa", "rf_mep", "idw", "ok"],
        "rf_mep": {"n_estimators": 30},
    }
    p["cv"].update(schemes=["site_cv"], n_splits=3, site_cv_deep=["mpfm"])
    path = tmp_path / "valparaiso.yaml"
    path.write_text(yaml.safe_dump(cfg))
    target = "results/valparaiso_precip/evaluation/scores.csv"
    cmd = [SNAKEMAKE, "--cores", "2", "--configfile", str(path), "--directory", str(tmp_path)]
    run = subprocess.run(
        cmd + ["-s", str(ROOT / "Snakefile"), target], capture_output=True, text=True, timeout=1500
    )
    assert run.returncode == 0, run.stderr[-4000:]

    scores = pd.read_csv(tmp_path / target)
    head = scores[(scores["scheme"] == "site_cv") & (scores["subset"] == "all")]
    table = head.pivot_table(index="model", columns="metric", values="value")
    assert {"mpfm", "owa", "rf_mep", "chirps", "persiann", "idw", "ok", "product"} <= set(
        table.index
    )
    n = head.groupby("model")["n"].max()
    assert n["chirps"] == n["persiann"] == 8125  # 34 gauges x 243 days minus 137 gaps
    # raw products at the gauge cells: the independent LOGO numbers of the brief
    assert table.loc["chirps", "rmse"] == pytest.approx(6.36, abs=0.01)
    assert table.loc["persiann", "rmse"] == pytest.approx(5.32, abs=0.01)
    assert table.loc["chirps", "kge"] == pytest.approx(0.32, abs=0.01)
    # RF-MEP merges both products with the gauges: better than either raw product
    assert table.loc["rf_mep", "rmse"] < table.loc["persiann", "rmse"]
    assert table.loc["rf_mep", "cc"] > table.loc["persiann", "cc"]
    assert math.isfinite(table.loc["mpfm", "rmse"]) and math.isfinite(table.loc["mpfm", "kge"])
    # the gauges themselves: interpolating them beats both raw products on this dense
    # network, and the product (residual-corrected) is at least as good as the raw products
    assert table.loc["idw", "rmse"] < table.loc["persiann", "rmse"]
    assert table.loc["product", "rmse"] < table.loc["persiann", "rmse"]
    assert n["product"] == n["chirps"]  # no NaN holes: every gauge-day has a product value
