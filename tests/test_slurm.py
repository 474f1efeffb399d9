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
import time
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
YEARS = ("2019", "2020")  # the period of test_precip crosses new year
# Site values of the local test cluster, given the way a user gives them (docs/cluster.md).
# setup_slurm.sh announces one (device-less) GPU in a partition `gpu`, so the GPU rules are
# submitted with --gpus=1 as on a real cluster (and run on the CPU).
SLURM_ENV = {
    "GRIDFUSE_SLURM_PARTITION": "debug",
    "GRIDFUSE_SLURM_GPU_PARTITION": "gpu",
    "GRIDFUSE_SLURM_GPUS": "1",
    "GRIDFUSE_SLURM_CPUS_PER_GPU": "2",
    "GRIDFUSE_SLURM_ACCOUNT": "",
    "GRIDFUSE_SLURM_JOBS": "4",
    "GRIDFUSE_SLURM_STATUS_WAIT": "4",
}
# Outputs that legitimately differ between two runs (timings, logs, run metadata).
TIMING = ["seconds", "elapsed_s", "runtime_s", "created", "history", "date_created", "host"]
VOLATILE = re.compile(r"(^|/)(logs|benchmarks)/|\.log$|\.html$")


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


def snakemake(workdir: Path, configfile: Path, *args: str, env=None, timeout=540):
    """Start snakemake on the project's Snakefile in ``workdir``; returns a waiter."""
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
    log = open(workdir / "snakemake.out", "w+")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )

    def wait():
        rc = proc.wait()
        log.seek(0)
        text = log.read()
        log.close()
        if rc != 0:
            cancel(workdir)
            pytest.fail(f"{' '.join(cmd[4:])} exited {rc}:\n{text[-12000:]}")
        return text

    return wait


def cancel(workdir: Path) -> None:
    """Cancel SLURM jobs a failed run left queued or running for ``workdir``."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True
    ).stdout.split("\n")
    ids = [line.split()[0] for line in out if line.strip().endswith(str(workdir))]
    if ids:
        subprocess.run(["scancel", *ids], check=False)


def sacct_jobs(workdir: Path) -> pd.DataFrame:
    """Jobs SLURM accounted for ``workdir``: id, state, comment (rule and wildcards)."""
    out = subprocess.run(
        [
            "sacct",
            "-X",
            "-n",
            "-P",
            "-S",
            "2000-01-01",
            "-o",
            "JobID,State,Partition,AllocTRES,WorkDir,Comment",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|", 5) for line in out.splitlines() if line.strip()]
    cols = ["jobid", "state", "partition", "tres", "workdir", "comment"]
    df = pd.DataFrame(rows, columns=cols)
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
        ta, tb = (pd.read_csv(p).drop(columns=TIMING, errors="ignore") for p in (a, b))
        pd.testing.assert_frame_equal(ta, tb)
    elif name.endswith(".json"):
        ja, jb = (yaml.safe_load(p.read_text()) for p in (a, b))
        for j in (ja, jb):
            if isinstance(j, dict):
                for key in TIMING:
                    j.pop(key, None)
        assert ja == jb, name
    elif name.endswith(".pt"):
        import torch

        sa, sb = (torch.load(p, map_location="cpu", weights_only=False) for p in (a, b))
        _assert_same_tree(sa, sb, name)
    elif name.endswith((".txt", ".png")):
        # LightGBM text models and figures carry run-dependent headers; checked via products
        assert b.stat().st_size > 0, name
    else:
        assert a.read_bytes() == b.read_bytes(), name


def _assert_same_tree(x, y, where: str) -> None:
    """Nested dicts/lists of tensors and plain values are equal (tensors exactly)."""
    import torch

    if isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys(), where
        for k in x:
            if k not in TIMING:
                _assert_same_tree(x[k], y[k], f"{where}/{k}")
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y)):
            _assert_same_tree(u, v, f"{where}[{i}]")
    elif isinstance(x, torch.Tensor):
        assert torch.equal(x, y), where
    else:
        assert x == y, where


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


def tiny_config() -> dict:
    """configs/test.yaml's precip product with one source and a small network (fast jobs)."""
    cfg = yaml.safe_load((ROOT / "configs" / "test.yaml").read_text())
    prod = cfg["products"][PRODUCT]
    prod["sources"] = {k: prod["sources"][k] for k in ("era5",)}
    prod["model"] = {
        "mpfm": {
            "conv_channels": [4, 4],
            "hidden": [4],
            "head_hidden": 8,
            "epochs": 1,
            "samples_per_epoch": 64,
        },
        "baselines": {"models": []},
    }
    cfg["products"] = {PRODUCT: prod}
    return cfg


class _Resources(dict):
    __getattr__ = dict.__getitem__


class _Job:
    """The parts of a Snakemake job the plugin's sbatch builder reads."""

    def __init__(self, name, threads, resources):
        self.name, self.threads, self.resources = name, threads, _Resources(resources)
        self.wildcards = {}


def render_profile(env: dict[str, str]) -> dict:
    """profiles/slurm/config.yaml rendered (YTE) under the given GRIDFUSE_SLURM_* variables."""
    import yte

    keep = {k: v for k, v in os.environ.items() if not k.startswith("GRIDFUSE_SLURM_")}
    old = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update({**keep, **env})
        with open(ROOT / "profiles" / "slurm" / "config.yaml") as f:
            return yte.process_yaml(f, require_use_yte=True)
    finally:
        os.environ.clear()
        os.environ.update(old)


def sbatch_line(profile: dict, rule: str, threads: int = 1) -> str:
    """The sbatch options the SLURM plugin builds for a rule under this profile."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    res = {**profile["default-resources"], **profile["set-resources"].get(rule, {})}
    job = _Job(rule, threads, res)
    params = {
        "run_uuid": "x",
        "slurm_logfile": "log",
        "comment_str": f"rule_{rule}",
        "account": f" -A {res['slurm_account']}" if "slurm_account" in res else "",
        "partition": f" -p {res['slurm_partition']}",
        "workdir": "",
    }
    return get_submit_command(job, params) + set_gres_string(job)


def test_profile_defaults_and_site_values():
    p = render_profile({})
    assert p["executor"] == "slurm"
    assert p["default-resources"] == {"slurm_partition": "normal", "mem_mb": 4000, "runtime": 60}
    assert p["jobs"] == 100 and p["retries"] == 1 and p["latency-wait"] >= 30
    gpu_rules = p["set-resources"]
    assert gpu_rules, "the profile names no GPU rules"
    for rule, r in gpu_rules.items():
        assert r == {"slurm_partition": "gpu", "gpu": 1, "cpus_per_gpu": 8}, rule
    site = render_profile(
        {
            "GRIDFUSE_SLURM_PARTITION": "compute",
            "GRIDFUSE_SLURM_ACCOUNT": "proj42",
            "GRIDFUSE_SLURM_GPU_PARTITION": "a100",
            "GRIDFUSE_SLURM_GPU_MODEL": "a100",
            "GRIDFUSE_SLURM_JOBS": "7",
            "GRIDFUSE_SLURM_QOS": "long",
        }
    )
    assert site["default-resources"]["slurm_partition"] == "compute"
    assert site["default-resources"]["slurm_account"] == "proj42"
    assert site["jobs"] == 7 and site["slurm-qos"] == "long"
    for r in site["set-resources"].values():
        assert r["slurm_partition"] == "a100" and r["gpu_model"] == "a100"
    cpu = render_profile({"GRIDFUSE_SLURM_GPUS": "0", "GRIDFUSE_SLURM_PARTITION": "debug"})
    for r in cpu["set-resources"].values():
        assert r == {"slurm_partition": "debug", "gpu": 0}


def test_profile_gives_the_plugin_gpu_flags():
    """The profile's keys are the ones the plugin turns into --gpus / --cpus-per-gpu."""
    p = render_profile({"GRIDFUSE_SLURM_ACCOUNT": "proj42"})
    rule = next(iter(p["set-resources"]))
    line = sbatch_line(p, rule, threads=4)
    assert "--gpus=1" in line and "--cpus-per-gpu=8" in line and " -p gpu" in line, line
    assert "-A proj42" in line and "--mem 4000" in line and "-t 60" in line, line
    assert "--cpus-per-task" not in line, line
    cpu = render_profile({"GRIDFUSE_SLURM_GPUS": "0"})
    line = sbatch_line(cpu, rule, threads=4)
    assert "--gpus" not in line and "--cpus-per-task=4" in line and " -p normal" in line, line


def test_profile_gpu_rules_exist():
    """Every rule the profile gives a GPU is a rule of the workflow (names drift otherwise)."""
    proc = subprocess.run(
        [str(SNAKEMAKE), "--list-rules", "--configfile", str(ROOT / "configs" / "test.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rules = set(proc.stdout.split())
    missing = set(render_profile({})["set-resources"]) - rules
    assert not missing, f"profile set-resources name rules that do not exist: {missing}"


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_equals_local_and_reruns_one_year(slurm, tmp_path):
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    local, remote = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    remote.mkdir()
    targets = [f"results/{PRODUCT}/product/{y}.nc" for y in YEARS]

    # 1. a local run and the same through SLURM, side by side (the SLURM run mostly waits)
    t0 = time.perf_counter()
    local_run = snakemake(local, configfile, "--cores", "4", *targets)
    slurm_run = snakemake(
        remote, configfile, "--profile", "profiles/slurm", *targets, env=SLURM_ENV
    )
    local_run()
    t_local = time.perf_counter() - t0
    slurm_run()
    t_slurm = time.perf_counter() - t0
    a, b = outputs(local / "results"), outputs(remote / "results")
    assert all(t.removeprefix("results/") in a for t in targets), sorted(a)
    assert sorted(a) == sorted(b)
    for rel in a:
        assert_same_file(a[rel], b[rel])
    first = sacct_jobs(remote)
    print(f"\nlocal run {t_local:.0f} s; SLURM run {t_slurm:.0f} s (started together)")
    show = ["jobid", "state", "partition", "tres", "comment"]
    print(f"first SLURM run: {len(first)} jobs\n{first[show].to_string()}")
    assert len(first) > 0 and (first["state"] == "COMPLETED").all(), first.to_string()
    rules = first["comment"].str.extract(r"^rule_(\w+?)(?:_wildcards_|$)")[0]
    assert {"downscale", "train_precip", "predict_precip"} <= set(rules), sorted(set(rules))
    gpu = rules.isin(["train_precip", "predict_precip"])
    assert (first.loc[gpu, "partition"] == "gpu").all(), first[gpu].to_string()
    assert first.loc[gpu, "tres"].str.contains("gres/gpu=1").all(), first[gpu].to_string()
    assert not first.loc[~gpu, "tres"].str.contains("gpu").any(), first[~gpu].to_string()
    assert (first.loc[~gpu, "partition"] == "debug").all(), first[~gpu].to_string()

    # 2. delete one year's product; rebuild it through SLURM
    year = YEARS[0]
    target = Path(f"results/{PRODUCT}/product/{year}.nc")
    (remote / target).unlink()
    t0 = time.perf_counter()
    snakemake(remote, configfile, "--profile", "profiles/slurm", str(target), env=SLURM_ENV)()
    assert_same_file(local / target, remote / target)
    rerun = sacct_jobs(remote)
    rerun = rerun[rerun["jobid"] > first["jobid"].max()]
    print(
        f"rerun of {target}: {time.perf_counter() - t0:.0f} s, {len(rerun)} jobs\n{rerun[show].to_string()}"
    )
    assert len(rerun) >= 1
    assert (rerun["state"] == "COMPLETED").all(), rerun.to_string()
    years = rerun["comment"].map(year_of)
    assert (years == year).all(), f"jobs of other years (or all years) ran:\n{rerun.to_string()}"
    shutil.rmtree(remote / ".snakemake" / "slurm_logs", ignore_errors=True)
