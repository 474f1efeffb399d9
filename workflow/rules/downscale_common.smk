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


def _ingest_ready(product):
    """The product's ingest (and, for the demo, synthesizer) rules exist."""
    rules_needed = [f"ingest_{s}" for s in sources(product)] + ["ingest_stations"]
    if is_synthetic(product):
        rules_needed.append(f"synthesize_{pcfg(product)['kind']}_demo")
    return all(workflow.is_rule(r) for r in rules_needed)
