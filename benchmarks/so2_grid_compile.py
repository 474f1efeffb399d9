"""Gridding a freshly fitted LightGBM (an osse_grid baseline or ablation variant): its trees
compiled (lleaves) and predicted with, or ``Booster.predict``; CPU time by
``time.process_time``, one thread, against what the cost constants say.

Fits a model of the SO2 preset's tree settings (255 leaves) for ``--trees`` rounds on
``--fit-rows`` x ``--cols`` synthetic rows, then predicts ``--rows`` float32 rows (every 7th
NaN in a column, as the feature builder gives them) both ways:

- ``Booster.predict``;
- the path ``osse_baseline_scores`` takes when compiling pays: ``model.txt`` saved in a
  temporary folder, ``compile_trees``, ``load_compiled``, ``CompiledTrees.predict`` (the
  compile counted in its time);

and reports both CPU times, the compile's, the largest relative difference of the
predictions (the acceptance rule is 1e-6) and the CPU times the cost constants' kernel rates
give for the same rows and trees, with the break-even rows
(:func:`gridfuse.cost.lleaves_break_even_rows`).

    python benchmarks/so2_grid_compile.py                  # 300 trees, 1,500,000 rows
    python benchmarks/so2_grid_compile.py --rows 400000    # below the break-even

Writes results/benchmarks/so2_grid_compile.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import Bench

from gridfuse import cost


def _table(n: int, cols: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, cols)).astype(np.float32)
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] ** 2 + 0.3 * rng.normal(size=n)
    return X, y.astype(np.float32)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--rows", type=int, default=1_500_000, help="rows predicted")
    ap.add_argument("--fit-rows", type=int, default=120_000)
    ap.add_argument("--cols", type=int, default=60)
    args = ap.parse_args(argv)

    import lightgbm as lgb

    from gridfuse.models.so2 import DEFAULT_LIGHTGBM, compile_trees, load_compiled

    params = {**DEFAULT_LIGHTGBM, "num_threads": 1, "verbose": -1, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(*_table(args.fit_rows, args.cols)), args.trees)
    X, _ = _table(args.rows, args.cols, seed=1)
    X[::7, 3] = np.nan

    t0 = time.process_time()
    ref = booster.predict(X, num_threads=1)
    t_booster = time.process_time() - t0

    with tempfile.TemporaryDirectory(prefix="gridfuse_lleaves_") as tmp:
        t0 = time.process_time()
        booster.save_model(str(Path(tmp) / "model.txt"))
        compile_trees(Path(tmp) / "model.txt")
        trees = load_compiled(Path(tmp) / "model.txt")
        t_compile = time.process_time() - t0
        got = trees.predict(X, threads=1)
        t_compiled = time.process_time() - t0
    rel = float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300)))

    k = cost.load_constants()
    units = args.rows * args.trees
    model_booster = units * k.kernel("lgbm_predict_s_per_row_round")
    model_compiled = units * k.kernel("lleaves_predict_s_per_row_round") + args.trees * k.kernel(
        "lleaves_compile_s_per_tree"
    )
    even = cost.lleaves_break_even_rows(k)
    out = {
        "rows": args.rows,
        "trees": args.trees,
        "booster_cpu_s": t_booster,
        "compiled_cpu_s": t_compiled,
        "compile_cpu_s": t_compile,
        "compiled_predict_cpu_s": t_compiled - t_compile,
        "ratio": t_booster / t_compiled,
        "max_rel_diff": rel,
        "modelled_booster_cpu_s": model_booster,
        "modelled_compiled_cpu_s": model_compiled,
        "break_even_rows": even,
    }
    print(
        f"{args.rows:,} rows x {args.trees} trees, one thread: Booster.predict "
        f"{t_booster:.1f} CPU s; compiled {t_compiled:.1f} CPU s (compile {t_compile:.1f} + "
        f"predict {t_compiled - t_compile:.1f}): {t_booster / t_compiled:.2f} x; largest "
        f"relative difference {rel:.1e}\n"
        f"cost constants: Booster {model_booster:.1f} s, compiled {model_compiled:.1f} s "
        f"(break-even {even:,.0f} rows: {'compile' if args.rows >= even else 'Booster'})"
    )
    bench = Bench("so2_grid_compile")
    bench.add(
        f"grid predict of {args.rows} rows x {args.trees} trees, compile included",
        "CPU s",
        ours=t_compiled,
        reference=t_booster,
        reference_name="Booster.predict",
        higher_is_better=False,
        **{n: v for n, v in out.items() if n not in ("booster_cpu_s", "compiled_cpu_s")},
    )
    bench.write()
    return out


if __name__ == "__main__":
    main()
