# Helpers of the 'downscale' stage (downscale.smk): product lists, file lists, sizes.


def downscale_products(temporary):
    """Products whose downscaled files are (or are not) marked temporary."""
    ps = [p for p in PRODUCTS if bool(pcfg(p)["downscale"]["temporary"]) == temporary]
    return "|".join(ps) or "NO_PRODUCT"


def downscaled_files(product, years_=None):
    """Downscaled files of every source of a product, for the given years (default all)."""
    ys = all_years(product) if years_ is None else years_
    return [
        res(product, "downscaled", s, f"{y}.nc") for s in sources(product) for y in ys
    ]


def _grid_mcells(product, days=366):
    """Millions of target cells x days (sizes runtimes)."""
    return mem_for_cells(
        product, per_cell_day_bytes=1, days=days, base_mb=0, factor=1.0
    )


def _ingest_ready(product):
    """The product's ingest (and, for the demo, synthesizer) rules exist."""
    rules_needed = [f"ingest_{s}" for s in sources(product)] + ["ingest_stations"]
    if is_synthetic(product):
        rules_needed.append(f"synthesize_{pcfg(product)['kind']}_demo")
    return all(workflow.is_rule(r) for r in rules_needed)
