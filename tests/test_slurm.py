"""The workflow through a real SLURM (single node on localhost) equals a local run.

Runs only when asked (``GRIDFUSE_SLURM=1``; ``make slurm-test`` does it): the fixture brings
SLURM up with ``tests/slurm/setup_slurm.sh start`` (root; installs the Debian packages when
missing), which is idempotent and takes seconds once installed. Then, on the tiny precip
config:

1. the workflow runs locally, and again through ``--profile profiles/slurm`` with local site
   values (partition ``debug``, no account, GPU rules on CPUs); every output is compared;
2. one year's product file is deleted and rebuilt through SLURM; ``sacct`` must show that
   every job submitted for that rebuild belongs to that year (no other year, no all-years job).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "tests" / "slurm" / "setup_slurm.sh"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
PRODUCT = "test_precip"
# Site values of the local test cluster, given the way a user gives them (docs/cluster.md).
SLURM_ENV = {
    "GRIDFUSE_SLURM_PARTITION": "debug",
    "GRIDFUSE_SLURM_GPU_PARTITION": "debug",
    "GRIDFUSE_SLURM_GPUS": "0",
    "GRIDFUSE_SLURM_ACCOUNT": "",
    "GRIDFUSE_SLURM_JOBS": "4",
    "GRIDFUSE_SLURM_STATUS_WAIT": "5",
}
# Outputs that legitimately differ between two runs (timings, logs, run metadata).
VOLATILE = re.compile(r"(^|/)(logs|benchmarks)/|\.log$|\.html$")

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _setup(action: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SETUP), action], capture_output=True, text=True, timeout=400)


@pytest.fixture(scope="module")
def slurm():
    """A running single-node SLURM with accounting, or a skip that says why."""
    if os.environ.get("GRIDFUSE_SLURM") != "1":
        pytest.skip(
            "SLURM test not requested: run `make slurm-test` (root; installs slurm, munge, "
            "slurmdbd, mariadb from Debian) or set GRIDFUSE_SLURM=1"
        )
    if os.geteuid() != 0:
        if _setup("status").returncode != 0:
            pytest.skip("SLURM is not running and starting it needs root")
        return
    proc = _setup("start")
    if proc.returncode != 0:
        pytest.fail(f"setup_slurm.sh start failed:\n{proc.stdout}\n{proc.stderr}")
    print(proc.stdout)


def snakemake(workdir: Path, configfile: Path, *args: str, env=None, timeout=280):
    """Run snakemake on the project's Snakefile in ``workdir``; fail with its log tail."""
    cmd = [
        "timeout",
        "-k",
        "10",
        str(timeout),
        str(SNAKEMAKE),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd[4:])} exited {proc.returncode}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def sacct_jobs(workdir: Path) -> pd.DataFrame:
    """Jobs SLURM accounted for ``workdir``: id, state, comment (rule and wildcards)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "2000-01-01", "-o", "JobID,State,WorkDir,Comment"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|", 3) for line in out.splitlines() if line.strip()]
    df = pd.DataFrame(rows, columns=["jobid", "state", "workdir", "comment"])
    df = df[df["workdir"] == str(workdir)].copy()
    df["jobid"] = df["jobid"].astype(int)
    return df.sort_values("jobid").reset_index(drop=True)


def outputs(results: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(results)): p
        for p in sorted(results.rglob("*"))
        if p.is_file() and not VOLATILE.search(str(p.relative_to(results)))
    }


def assert_same_file(a: Path, b: Path) -> None:
    """Same content: data of NetCDF/GeoTIFF/tables compared, bytes otherwise (JSON: values)."""
    name = a.name
    if name.endswith(".nc"):
        with xr.open_dataset(a) as da, xr.open_dataset(b) as db:
            xr.testing.assert_equal(da.load(), db.load())
            skip = {"history", "date_created"}
            assert {k: v for k, v in da.attrs.items() if k not in skip} == {
                k: v for k, v in db.attrs.items() if k not in skip
            }, name
    elif name.endswith((".tif", ".tif.gz")):
        from gridfuse.io import read_geotiff

        xa, xb = read_geotiff(a), read_geotiff(b)
        np.testing.assert_array_equal(np.asarray(xa), np.asarray(xb), err_msg=str(a))
    elif name.endswith(".parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    elif name.endswith(".csv"):
        pd.testing.assert_frame_equal(pd.read_csv(a), pd.read_csv(b))
    elif name.endswith(".json"):
        ja, jb = (yaml.safe_load(p.read_text()) for p in (a, b))
        for j in (ja, jb):
            if isinstance(j, dict):
                for key in ("created", "history", "date_created", "elapsed_s", "host"):
                    j.pop(key, None)
        assert ja == jb, name
    elif name.endswith((".pt", ".txt", ".lgb", ".pkl", ".png")):
        # model weights / figures: same size class, content checked through the products
        assert b.stat().st_size > 0, name
    else:
        assert a.read_bytes() == b.read_bytes(), name


def year_of(comment: str) -> str | None:
    """The year wildcard in a plugin job comment ``rule_<rule>_wildcards_<v1>_<v2>...``."""
    m = re.search(r"_wildcards_(.*)$", comment)
    years = re.findall(r"(?:^|_)(\d{4})(?=_|$)", m.group(1)) if m else []
    return years[0] if len(years) == 1 else None


def test_year_of_comment():
    assert year_of("rule_predict_wildcards_test_precip_2019") == "2019"
    assert year_of("rule_ingest_wildcards_test_precip_gsmap_2020") == "2020"
    assert year_of("rule_train_wildcards_test_precip") is None
    assert year_of("rule_all") is None


def test_slurm_equals_local_and_reruns_one_year(slurm, tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "test.yaml").read_text())
    cfg["products"] = {PRODUCT: cfg["products"][PRODUCT]}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(cfg, sort_keys=False))
    local, remote = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    remote.mkdir()

    # 1. local run, then the same through SLURM
    snakemake(local, configfile, "--cores", "2")
    snakemake(remote, configfile, "--profile", "profiles/slurm", env=SLURM_ENV)
    a, b = outputs(local / "results"), outputs(remote / "results")
    assert a, "the local run wrote nothing under results/"
    assert sorted(a) == sorted(b)
    for rel in a:
        assert_same_file(a[rel], b[rel])
    first = sacct_jobs(remote)
    print(f"\nfirst SLURM run: {len(first)} jobs\n{first.to_string()}")
    assert len(first) > 0 and (first["state"] == "COMPLETED").all(), first.to_string()

    # 2. delete one year's product; rebuild it through SLURM
    per_year = {}
    for stage in ("product", "downscaled", "daily"):
        for rel in a:
            m = re.match(rf"{PRODUCT}/{stage}/(?:[a-z0-9_]+/)?(\d{{4}})\.nc$", rel)
            if m:
                per_year.setdefault(m.group(1), rel)
        if per_year:
            break
    year = min(per_year)
    target = Path("results") / per_year[year]
    (remote / target).unlink()
    snakemake(remote, configfile, "--profile", "profiles/slurm", str(target), env=SLURM_ENV)
    assert_same_file(local / target, remote / target)
    rerun = sacct_jobs(remote)
    rerun = rerun[rerun["jobid"] > first["jobid"].max()]
    print(f"rerun of {target}: {len(rerun)} jobs\n{rerun.to_string()}")
    assert len(rerun) >= 1
    assert (rerun["state"] == "COMPLETED").all(), rerun.to_string()
    years = rerun["comment"].map(year_of)
    assert (years == year).all(), f"jobs of other years (or all years) ran:\n{rerun.to_string()}"
    shutil.rmtree(remote / ".snakemake" / "slurm_logs", ignore_errors=True)
