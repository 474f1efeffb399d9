import numpy as np
import pytest

from gridfuse.grid import Grid


def test_qinghai_preset_shape_and_exact_centres():
    g = Grid.preset("qinghai")
    assert g.shape == (850, 1390)
    assert g.lon[0] == 89.5 + 0.5 * 0.01
    assert g.lon[-1] == 89.5 + 1389.5 * 0.01
    assert g.lat[0] == 39.87 - 0.5 * 0.01
    assert g.lat[-1] == 39.87 - 849.5 * 0.01
    assert np.all(np.diff(g.lat) < 0) and np.all(np.diff(g.lon) > 0)
    assert g.lon.dtype == np.float64
    # computed from the origin, never accumulated: equals the closed form for every cell
    i = np.arange(1390)
    np.testing.assert_array_equal(g.lon, 89.5 + (i + 0.5) * 0.01)


def test_china_preset_shape():
    g = Grid.preset("china")
    assert g.shape == (3600, 6200)
    assert g.lon[0] == pytest.approx(73.005, abs=1e-12)
    assert g.lat[0] == pytest.approx(53.995, abs=1e-12)
    assert g.lat[-1] == pytest.approx(18.005, abs=1e-12)
    t = g.transform
    assert (t.a, t.e, t.c, t.f) == (0.01, -0.01, 73.0, 54.0)


def test_rowcol_round_trip_and_outside():
    g = Grid(100.0, 30.0, 101.0, 31.0, 0.1)
    row, col = g.rowcol(g.lon[[0, 3, 9]], g.lat[[0, 5, 9]])
    assert row.tolist() == [0, 5, 9] and col.tolist() == [0, 3, 9]
    # corners: the western and northern edges belong to the first cell
    assert g.rowcol(100.0, 31.0)[0].tolist() == [0]
    with pytest.raises(ValueError, match="outside grid"):
        g.rowcol(99.95, 30.5)
    row, col = g.rowcol([99.95, 100.05], [30.5, 30.5], check=False)
    assert row.tolist() == [-1, 5] and col.tolist() == [-1, 0]  # on an edge: the cell south
    assert g.contains([100.5, 102.0], [30.5, 30.5]).tolist() == [True, False]


def test_template_north_up_and_from_coords():
    g = Grid(10.0, 40.0, 10.5, 40.3, 0.1)
    da = g.template(["2020-01-01", "2020-01-02"])
    assert da.dims == ("time", "lat", "lon") and da.shape == (2, 3, 5)
    assert da.lat.values[0] > da.lat.values[-1]
    assert np.isnan(da.values).all()
    assert Grid.from_coords(da.lat.values, da.lon.values) == g


def test_invalid_grids_rejected():
    with pytest.raises(ValueError, match="positive"):
        Grid(0, 0, 1, 1, 0)
    with pytest.raises(ValueError, match="east > west"):
        Grid(1, 0, 0, 1, 0.1)
    with pytest.raises(ValueError, match="whole number"):
        Grid(0, 0, 1.05, 1, 0.1)


def test_padded_snaps_to_cells():
    g = Grid(100.0, 30.0, 101.0, 31.0, 0.25)
    p = g.padded(0.3)
    assert p.bounds == (99.5, 29.5, 101.5, 31.5)
