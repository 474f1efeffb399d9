"""Jobs get only the settings they read: after the test-config run, a dry run with one kind
of setting changed plans only the jobs that read it (and what is made from their outputs).

Snakemake reruns a job when its ``params`` change (rerun trigger ``params``), so a rule that
received a whole config section would rerun for any key of it. Each case changes the same
kind of setting in both products (precip and so2) and counts the jobs ``snakemake -n`` plans.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "configs" / "test.yaml").read_text())

# jobs that read raw data or make the fields every model reads: a training change must not
# plan any of them
UPSTREAM = {
    "synthesize_precip_demo",
    "synthesize_so2_demo",
    "truth_precip",
    "truth_so2",
    "build_mask",
    "build_static",
    "ingest_stations",
    "downscale",
    "compare_interpolation_precip",
    "samples_precip",
    "samples_so2",
}


def planned_jobs(workdir: Path, cfg: dict, tmp_path: Path) -> Counter:
    """Job counts per rule of ``snakemake -n`` with ``cfg`` in ``workdir`` ('all' left out)."""
    path = tmp_path / "changed.yaml"
    # the config's key order is kept: params are compared by their repr
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("snakemake")),
            "-n",
            "-s",
            str(ROOT / "Snakefile"),
            "--configfile",
            str(path),
            "--directory",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    counts: Counter = Counter()
    if "Job stats:" not in out:
        assert "Nothing to be done" in out, out[-3000:]
        return counts
    table = out.split("Job stats:", 1)[1].splitlines()
    for line in table[3:]:  # header, its rule, then one row per rule up to 'total'
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    counts.pop("all", None)
    return counts


def changed(**changes) -> dict:
    """The test config with ``{"product": {"a.b": value}}`` changes applied."""
    cfg = copy.deepcopy(CONFIG)
    for product, keys in changes.items():
        for key_path, value in keys.items():
            node = cfg["products"][product]
            *parents, last = key_path.split(".")
            for k in parents:
                node = node.setdefault(k, {})
            node[last] = value
    return cfg


def rules_reading_the_product(precip_years: int) -> Counter:
    """The jobs planned when the gridded products change (one per year where yearly)."""
    return Counter(
        {
            "predict_precip": precip_years,
            "export_geotiff_precip": precip_years,
            "score_grid_precip": precip_years,
            "cross_validate_precip": 1,
            "predict_so2": 1,
            "score_grid_so2": 1,  # the full model's osse_grid scores (read from the product)
            "cross_validate_so2": 1,
            "report_maps": 2,
            "report_scatter": 2,
            "report_scores": 2,
        }
    )


@pytest.mark.slow
def test_unchanged_config_plans_nothing(test_workflow, tmp_path):
    """The rewritten config with no change: nothing to do (the baseline of the cases below)."""
    assert planned_jobs(test_workflow, changed(), tmp_path) == Counter()


@pytest.mark.slow
def test_plan_only_mask_settings_rerun_nothing(test_workflow, tmp_path):
    """mask.url and mask.area_share only name and price a missing boundary file: the mask
    and the products made inside it are not rebuilt."""
    cfg = changed(test_so2={"mask.url": "https://example.org/boundary.zip", "mask.area_share": 0.9})
    assert planned_jobs(test_workflow, cfg, tmp_path) == Counter()


@pytest.mark.slow
def test_an_inference_setting_reruns_only_prediction(test_workflow, tmp_path):
    """A tile size changes neither the models nor the fields: only the gridded products and
    what is scored or drawn from them are planned."""
    cfg = changed(
        test_precip={"model.mpfm.predict_tile": 24},
        test_so2={"model.predict_tile": 24},
    )
    assert planned_jobs(test_workflow, cfg, tmp_path) == rules_reading_the_product(2)


@pytest.mark.slow
def test_a_report_or_shap_setting_reruns_only_its_figures(test_workflow, tmp_path):
    cfg = changed(
        test_precip={"report.n_days": 3},
        test_so2={"report.n_days": 3, "model.shap_samples": 60},
    )
    assert planned_jobs(test_workflow, cfg, tmp_path) == Counter(
        {"report_maps": 2, "explain_so2": 1}
    )


@pytest.mark.slow
def test_a_training_setting_reingests_nothing(test_workflow, tmp_path):
    """Training settings re-train and re-predict, but plan no ingest, downscale or sample
    job (the fields and station tables do not depend on them)."""
    cfg = changed(
        test_precip={"model.mpfm.epochs": 3},
        test_so2={"model.lightgbm.num_leaves": 7},
    )
    jobs = planned_jobs(test_workflow, cfg, tmp_path)
    assert not {r for r in jobs if r in UPSTREAM or r.startswith("ingest_")}, jobs
    # every network of every availability set, the full SO2 model, and both products
    assert jobs["train_precip"] == 4 and jobs["train_so2"] == 1, jobs
    assert jobs["predict_precip"] == 2 and jobs["predict_so2"] == 1, jobs
