"""Per-job memory and time of a workflow run through SLURM, from ``sacct``.

One row per Snakemake job submitted from a working directory: the rule and wildcards (from
the plugin's ``--comment rule_<rule>_wildcards_<values>``), the state, the request (memory,
time limit, CPUs) and what SLURM measured (the largest ``MaxRSS`` of the job's steps,
``Elapsed``).  ``MaxRSS`` is sampled every ``JobAcctGatherFrequency`` seconds.

    python tests/slurm/sacct_report.py WORKDIR [--since 2026-01-01] [--markdown]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

FIELDS = "JobID,State,ReqMem,MaxRSS,Elapsed,Timelimit,AllocCPUS,WorkDir,Comment"
_UNITS = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}


def to_mb(text: str) -> float:
    """MB of a SLURM memory string (``611592K``, ``200M``, ``4Gn``, ``1.5G``); NaN if empty."""
    m = re.match(r"^\s*([\d.]+)\s*([KMGT]?)", str(text))
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS.get(m.group(2) or "M", 1.0)


def to_seconds(text: str) -> float:
    """Seconds of a SLURM duration (``[D-]HH:MM:SS``, ``MM:SS``)."""
    days, _, rest = str(text).rpartition("-")
    parts = [float(p) for p in rest.split(":")] if rest else []
    s = 0.0
    for p in parts:
        s = s * 60 + p
    return s + (float(days) * 86400 if days else 0.0)


def jobs(workdir: str | Path, since: str = "2000-01-01") -> pd.DataFrame:
    """The jobs SLURM accounted for ``workdir``, one row per job (steps folded in)."""
    out = subprocess.run(
        ["sacct", "-n", "-P", "-S", since, "-o", FIELDS],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|", 8) for line in out.splitlines() if line.strip()]
    df = pd.DataFrame(rows, columns=FIELDS.lower().split(","))
    df["job"] = df["jobid"].str.split(".").str[0]
    top = df[~df["jobid"].str.contains(r"\.")]
    top = top[top["workdir"] == str(Path(workdir).resolve())]
    steps = df[df["job"].isin(top["job"])]
    rss = steps.assign(mb=steps["maxrss"].map(to_mb)).groupby("job")["mb"].max()
    m = re.compile(r"^rule_(\w+?)(?:_wildcards_(.*))?$")
    parsed = top["comment"].map(lambda c: m.match(c) or None)
    res = pd.DataFrame(
        {
            "jobid": top["job"].astype(int),
            "rule": [p.group(1) if p else "" for p in parsed],
            "wildcards": [(p.group(2) or "") if p else "" for p in parsed],
            "state": top["state"],
            "cpus": top["alloccpus"].astype(int),
            "req_mem_mb": top["reqmem"].map(to_mb),
            "max_rss_mb": top["job"].map(rss),
            "elapsed_s": top["elapsed"].map(to_seconds),
            "limit_s": top["timelimit"].map(to_seconds),
        }
    )
    res["rss_share"] = res["max_rss_mb"] / res["req_mem_mb"]
    return res.sort_values("jobid").reset_index(drop=True)


def markdown(df: pd.DataFrame) -> str:
    """A markdown table: job, state, request and measured memory, elapsed and limit."""
    lines = [
        "| rule | wildcards | state | CPUs | mem request MB | MaxRSS MB | MaxRSS / request "
        "| Elapsed | time limit |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def hms(s):
        s = int(round(s))
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

    for r in df.itertuples():
        lines.append(
            f"| {r.rule} | {r.wildcards} | {r.state} | {r.cpus} | {r.req_mem_mb:,.0f} "
            f"| {r.max_rss_mb:,.0f} | {r.rss_share:.2f} | {hms(r.elapsed_s)} | {hms(r.limit_s)} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir")
    ap.add_argument("--since", default="2000-01-01")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    df = jobs(args.workdir, args.since)
    print(markdown(df) if args.markdown else df.to_string())
    over = df[df["max_rss_mb"] > df["req_mem_mb"]]
    if len(over):
        print(f"\n{len(over)} jobs exceeded their memory request", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
