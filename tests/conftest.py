"""Shared fixtures and helpers for the gridfuse tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GRIDFUSE_SHARED", ROOT.parent / "shared"))
REALDATA = SHARED / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real-data folder; tests using it skip when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data not available ({REALDATA} absent)")
    return REALDATA


@pytest.fixture(scope="session")
def test_workflow(tmp_path_factory) -> Path:
    """The whole ``configs/test.yaml`` workflow, run once per test session.

    Several end-to-end tests check its outputs. With pytest-xdist every worker has its own
    base temp folder under a common parent: the run lives in that parent, behind a file lock,
    so the first worker that needs it runs it and the others wait and reuse it. Returns the
    working directory (outputs under ``results/``); a failed run fails every test using it.
    """
    import fcntl
    import subprocess
    import sys

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if base.name.startswith("popen-gw") else base
    work = shared / "test_workflow"
    work.mkdir(exist_ok=True)
    log = work / "run.log"
    with open(shared / "test_workflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        status = work / "status"
        if not status.exists():
            snakemake = str(Path(sys.executable).with_name("snakemake"))
            proc = subprocess.run(
                [
                    snakemake,
                    "--cores",
                    "2",
                    "-s",
                    str(ROOT / "Snakefile"),
                    "--configfile",
                    str(ROOT / "configs" / "test.yaml"),
                    "--directory",
                    str(work),
                    "--benchmark-extended",  # rule and request in every benchmark file
                ],
                capture_output=True,
                text=True,
                timeout=2400,
            )
            log.write_text(proc.stdout + proc.stderr)
            status.write_text(str(proc.returncode))
    if status.read_text() != "0":
        pytest.fail(f"the test workflow failed; see {log}:\n{log.read_text()[-4000:]}")
    return work
