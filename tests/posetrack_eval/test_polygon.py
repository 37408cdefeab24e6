import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posetrack_eval.polygon import inside_any

SQUARE = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])


@pytest.mark.parametrize(
    ("point", "inside"),
    [((5, 5), True), ((0, 5), False), ((10, 10), False), ((5, 0), False), ((11, 5), False), ((-1, -1), False),
     ((9.999, 0.001), True)],
)  # fmt: skip
def test_boundary_is_outside_like_shapely_contains(point, inside):
    assert inside_any(np.array([point], dtype=float), [SQUARE]).tolist() == [inside]


def test_concave_polygon_and_several_regions():
    # an L shape: the notch (7, 7) is outside
    ell = np.array([[0, 0], [10, 0], [10, 5], [5, 5], [5, 10], [0, 10]], dtype=float)
    far = SQUARE + 100
    points = np.array([[2, 8], [7, 7], [7, 2], [105, 105]], dtype=float)
    assert inside_any(points, [ell, far]).tolist() == [True, False, True, True]


def test_degenerate_polygons_contain_nothing():
    points = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert not inside_any(points, [SQUARE[:2], np.zeros((0, 2)), np.array([[0, 0], [1, 1], [2, 2]], float)]).any()
    assert inside_any(np.zeros((0, 2)), [SQUARE]).shape == (0,)


@settings(max_examples=25, deadline=None)
@given(st.floats(-20, 20), st.floats(-20, 20), st.floats(0.1, 30))
def test_inside_a_convex_polygon_matches_the_half_plane_test(x, y, radius):
    angles = np.linspace(0, 2 * np.pi, 7)[:-1]
    hexagon = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    edges = np.roll(hexagon, -1, axis=0) - hexagon
    cross = edges[:, 0] * (y - hexagon[:, 1]) - edges[:, 1] * (x - hexagon[:, 0])
    expected = bool((cross > 1e-9).all())
    if np.abs(cross).min() > 1e-9:  # away from the boundary both tests are exact
        assert inside_any(np.array([[x, y]]), [hexagon])[0] == expected
