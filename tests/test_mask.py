"""Domain masks: vector (GeoJSON, GeoPackage, shapefile) and raster files, inline boxes and
polygons, the centre and all-touched rules, storage, and the errors naming the file/key."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gridfuse.grid import Grid
from gridfuse.mask import (
    build_mask,
    geometry_from_config,
    points_inside,
    rasterize,
    read_mask,
    read_vector,
    write_mask,
)

# 10 x 10 cells of 0.1 deg: centres at x.x5
GRID = Grid(west=100.0, south=30.0, east=101.0, north=31.0, res=0.1)
# a right triangle whose hypotenuse lon + lat = 131.02 passes no cell centre (their sums
# are 130.1, 130.2, ...)
TRIANGLE = [[100.0, 30.0], [101.02, 30.0], [100.0, 31.02]]


def _centre_truth(grid: Grid) -> np.ndarray:
    """Cells whose centre lies below the triangle's hypotenuse (by hand)."""
    lon, lat = np.meshgrid(grid.lon, grid.lat)
    return (lon - 100.0) + (lat - 30.0) < 1.02


def _write_geojson(path, ring, props=None, crs=None):
    feats = [
        {
            "type": "Feature",
            "properties": props or {"NAME_1": "Tri"},
            "geometry": {"type": "Polygon", "coordinates": [ring + [ring[0]]]},
        }
    ]
    doc = {"type": "FeatureCollection", "features": feats}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc))
    return path


def test_box_and_polygon_by_hand():
    m = build_mask({"box": [100.2, 30.3, 100.5, 30.6]}, GRID)
    # rows run north to south: lat centres 30.95 .. 30.05; cells 30.35..30.55, 100.25..100.45
    rows = np.flatnonzero(m.any(1))
    cols = np.flatnonzero(m.any(0))
    assert GRID.lat[rows].round(2).tolist() == [30.55, 30.45, 30.35]
    assert GRID.lon[cols].round(2).tolist() == [100.25, 100.35, 100.45]
    assert m.sum() == 9
    tri = build_mask({"polygon": TRIANGLE}, GRID)
    np.testing.assert_array_equal(tri, _centre_truth(GRID))


def test_all_touched_contains_centre_rule():
    centre = rasterize([geometry_from_config(TRIANGLE)], GRID, rule="centre")
    touched = rasterize([geometry_from_config(TRIANGLE)], GRID, rule="all_touched")
    assert (touched >= centre).all() and touched.sum() > centre.sum()
    # row 0 (lat 30.95), col 1 (lon 100.15): centre sum 1.1, lower-left corner sum 1.0, so
    # the hypotenuse crosses it: in all_touched only; the cell next to it is in both
    assert touched[0, 1] and not centre[0, 1] and centre[0, 0]


@pytest.mark.parametrize(
    "driver,suffix", [("GeoJSON", ".geojson"), ("GPKG", ".gpkg"), ("ESRI Shapefile", ".shp")]
)
def test_vector_formats_with_layer_and_filter(tmp_path, driver, suffix):
    import pyogrio
    import shapely

    geoms = [
        shapely.Polygon(TRIANGLE),
        shapely.box(100.0, 30.0, 101.0, 31.0),  # would cover everything: filtered out
    ]
    path = tmp_path / f"bounds{suffix}"
    pyogrio.raw.write(
        path,
        geometry=shapely.to_wkb(np.array(geoms, dtype=object)),
        field_data=[np.array(["Qinghai", "Elsewhere"], dtype=object)],
        fields=["NAME_1"],
        geometry_type="Polygon",
        crs="EPSG:4326",
        driver=driver,
        layer="ADM_ADM_1",
    )
    spec = {"path": str(path), "where": "NAME_1 = 'Qinghai'"}
    if driver == "GPKG":
        spec["layer"] = "ADM_ADM_1"
    np.testing.assert_array_equal(build_mask(spec, GRID), _centre_truth(GRID))
    assert build_mask({"path": str(path)}, GRID).all()  # no filter: the union


def test_vector_in_another_crs_is_reprojected(tmp_path):
    # the triangle in Web Mercator (EPSG:3857)
    from rasterio.warp import transform

    xs, ys = transform("EPSG:4326", "EPSG:3857", [p[0] for p in TRIANGLE], [p[1] for p in TRIANGLE])
    ring = [[x, y] for x, y in zip(xs, ys)]
    path = _write_geojson(tmp_path / "merc.geojson", ring, crs="EPSG:3857")
    geoms = read_vector(path)
    got = rasterize(geoms, GRID)
    # Mercator's straight hypotenuse is not straight in lon/lat: compare away from it
    truth = _centre_truth(GRID)
    lon, lat = np.meshgrid(GRID.lon, GRID.lat)
    far = np.abs((lon - 100.0) + (lat - 30.0) - 1.0) > 0.12
    np.testing.assert_array_equal(got[far], truth[far])


def test_raster_mask_nearest_and_values(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    # a 0.05 deg raster (2 x 2 pixels per cell): class 7 in the western half, 3 elsewhere
    data = np.full((20, 20), 3, dtype=np.uint8)
    data[:, :10] = 7
    data[0, :] = 0  # nodata row at the north edge
    path = tmp_path / "classes.tif"
    with rasterio.open(
        path, "w", driver="GTiff", height=20, width=20, count=1, dtype="uint8",
        crs="EPSG:4326", transform=from_origin(100.0, 31.0, 0.05, 0.05), nodata=0,
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    west = build_mask({"path": str(path), "values": [7]}, GRID)
    expect = np.zeros(GRID.shape, bool)
    expect[:, :5] = True
    np.testing.assert_array_equal(west, expect)
    # no values: any valid non-zero pixel (the nodata row is under no cell centre)
    assert build_mask({"path": str(path)}, GRID).all()


def test_store_and_read_back(tmp_path):
    m = build_mask({"polygon": TRIANGLE}, GRID)
    write_mask(m, GRID, tmp_path / "mask.nc")
    np.testing.assert_array_equal(read_mask(tmp_path / "mask.nc", GRID), m)
    with pytest.raises(ValueError, match="grid has"):
        read_mask(tmp_path / "mask.nc", Grid(west=0, south=0, east=1, north=2, res=0.1))


def test_errors_name_the_file_and_key(tmp_path):
    key = "products.x.mask"
    with pytest.raises(FileNotFoundError, match=r"products\.x\.mask: mask file .*nope\.gpkg"):
        build_mask({"path": str(tmp_path / "nope.gpkg")}, GRID, key=key)
    bad = tmp_path / "garbage.geojson"
    bad.write_text("this is not json")
    with pytest.raises(ValueError, match=r"garbage\.geojson cannot be read as a vector file"):
        build_mask({"path": str(bad)}, GRID, key=key)
    far = _write_geojson(tmp_path / "far.geojson", [[0, 0], [1, 0], [0, 1]])
    with pytest.raises(
        ValueError, match=r"products\.x\.mask: the mask .*far\.geojson.* covers no cell"
    ):
        build_mask({"path": str(far)}, GRID, key=key)
    tri = _write_geojson(tmp_path / "tri.geojson", TRIANGLE)
    with pytest.raises(ValueError, match="has no geometry matching where"):
        build_mask({"path": str(tri), "where": "NAME_1 = 'Nowhere'"}, GRID, key=key)
    with pytest.raises(ValueError, match=r"products\.x\.mask\.box"):
        build_mask({"box": [101, 30, 100, 31]}, GRID, key=key)
    with pytest.raises(ValueError, match="no mask given"):
        build_mask({}, GRID, key=key)


def test_points_inside_polygon_boundary_inclusive():
    g = geometry_from_config(TRIANGLE)
    got = points_inside(g, [100.1, 100.9, 100.0, 100.0], [30.1, 30.9, 30.5, 30.0])
    assert got.tolist() == [True, False, True, True]


def test_missing_mask_file_stops_the_workflow_naming_the_key(tmp_path):
    """A configured mask file that is absent stops `snakemake -n` before any job."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "configs" / "test.yaml").read_text())
    cfg["products"] = {"test_so2": cfg["products"]["test_so2"]}
    cfg["products"]["test_so2"]["mask"] = {
        "path": "data/boundary/nowhere.gpkg",
        "layer": "ADM_ADM_0",
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    proc = subprocess.run(
        [snakemake, "-n", "-s", str(root / "Snakefile"), "--configfile", str(tmp_path / "c.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert (
        "products.test_so2.mask.path: data/boundary/nowhere.gpkg not found"
        in proc.stderr + proc.stdout
    )
