"""`gridfuse plan`: the priced DAG of any config, without raw data; bad configs named."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GRIDFUSE, SNAKEMAKE = str(BIN / "gridfuse"), str(BIN / "snakemake")


def plan(configfile, *extra, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [GRIDFUSE, "plan", "--configfile", str(configfile), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def dry_run_counts(configfile, workdir) -> dict[str, int]:
    """Rule -> job count of `snakemake -n` (the 'Job stats' table)."""
    proc = subprocess.run(
        [
            SNAKEMAKE,
            "-n",
            "--cores",
            "2",
            "-s",
            str(ROOT / "Snakefile"),
            "--configfile",
            str(configfile),
            "--directory",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout.split("Job stats:", 1)[-1]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}
    counts.pop("total", None)
    counts.pop("all", None)
    return counts


@pytest.mark.parametrize("name", ["configs/test.yaml", "config.yaml"])
def test_plan_counts_match_the_dry_run(name, tmp_path):
    proc = plan(ROOT / name, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert set(got) == {"total_cpu_hours", "total_gpu_hours", "max_job_hours", "rules"}
    for r in got["rules"]:
        assert set(r) == {"rule", "jobs", "cpu_hours", "gpu_hours", "mem_mb", "max_job_hours"}
        assert r["jobs"] > 0 and r["mem_mb"] > 0 and r["cpu_hours"] >= 0
    counts = {r["rule"]: r["jobs"] for r in got["rules"]}
    assert counts == dry_run_counts(ROOT / name, tmp_path)
    assert got["total_cpu_hours"] == pytest.approx(
        sum(r["cpu_hours"] for r in got["rules"]), abs=0.01
    )
    assert got["max_job_hours"] == max(r["max_job_hours"] for r in got["rules"])


def test_plan_needs_no_raw_data_and_prints_a_table(tmp_path):
    """A preset's plan from an empty folder: no raw data, every year's jobs priced."""
    proc = plan(ROOT / "configs" / "qinghai_precip.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(re.match(r"ingest_imerg\s+34\s", ln) for ln in lines), proc.stdout
    assert any(re.match(r"predict_precip\s+34\s", ln) for ln in lines), proc.stdout
    assert any(ln.startswith("total") for ln in lines)
    assert "no cost model" not in proc.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / ".snakemake").exists()


@pytest.mark.parametrize(
    "mutate, key",
    [
        (
            lambda c: c["products"]["demo_precip"]["downscale"].update(method="linear"),
            "products.demo_precip.downscale.method",
        ),
        (lambda c: c["products"]["demo_so2"]["grid"].pop("north"), "products.demo_so2.grid"),
        (
            lambda c: c["products"]["demo_precip"]["model"]["mpfm"].update(epochs="many"),
            "products.demo_precip.model.mpfm.epochs",
        ),
    ],
)
def test_plan_of_a_bad_config_names_the_key(mutate, key, tmp_path):
    cfg = copy.deepcopy(yaml.safe_load((ROOT / "config.yaml").read_text()))
    mutate(cfg)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(cfg))
    proc = plan(f)
    assert proc.returncode == 2
    assert key in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_validate_config_names_the_key_and_fills_defaults():
    from gridfuse.cli import ConfigError, validate_config

    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    cfg = yaml.safe_load((ROOT / "configs" / "test.yaml").read_text())
    full = validate_config(cfg, schema)
    assert full["products"]["test_precip"]["samples"]["patch"] == 15  # a default, filled
    assert "samples" not in cfg["products"]["test_precip"]  # the input is left alone
    bad = copy.deepcopy(cfg)
    bad["products"]["test_precip"]["cv"]["n_splits"] = 1
    with pytest.raises(ConfigError, match=r"products\.test_precip\.cv\.n_splits: 1 is less"):
        validate_config(bad, schema)
    with pytest.raises(ConfigError, match="mapping"):
        validate_config(["not", "a", "mapping"], schema)


def test_plan_totals_and_table():
    from gridfuse.cli import Plan, RulePlan

    p = Plan(
        [
            RulePlan("a", jobs=3, cpu_hours=2.5, gpu_hours=0.0, mem_mb=900, max_job_hours=1.0),
            RulePlan("b", jobs=1, cpu_hours=0.5, gpu_hours=0.25, mem_mb=4000, max_job_hours=2.0),
        ]
    )
    j = p.to_json()
    assert j["total_cpu_hours"] == 3.0 and j["total_gpu_hours"] == 0.25
    assert j["max_job_hours"] == 2.0 and [r["rule"] for r in j["rules"]] == ["a", "b"]
    lines = p.table().splitlines()
    assert lines[-1].split()[:3] == ["total", "4", "3.00"]
