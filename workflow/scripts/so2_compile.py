"""Compile the trees of the stored SO2 LightGBM model (model.predictor lleaves).

Input: model.txt. Outputs: model.lleaves.o (machine code for this CPU) and, beside it,
model.lleaves.json (the model's sha256, the CPU and the lleaves/llvmlite/LightGBM versions),
each written atomically (gridfuse.models.so2.compiled).
"""

from pathlib import Path

from gridfuse.log import from_snakemake
from gridfuse.models.so2 import compile_trees


def main() -> None:
    from_snakemake(snakemake)
    obj, record = Path(snakemake.output.obj), Path(snakemake.output.record)
    if record != obj.with_suffix(".json"):  # compile_trees writes the record beside obj
        raise ValueError(f"compile_so2: the record must be {obj.with_suffix('.json')}")
    compile_trees(snakemake.input.txt, obj)


main()
