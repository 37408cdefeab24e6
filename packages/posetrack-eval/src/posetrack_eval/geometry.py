"""Ignore regions: which points lie strictly inside a polygon (shapely's ``Polygon.contains(Point)``)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["inside_any"]


def _strictly_inside(points: npt.NDArray[np.float64], polygon: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Even-odd ray casting over all edges at once; points on an edge or vertex are not inside.

    Shapes:
        points: Float[n, 2]
        polygon: Float[k, 2] (open ring: the closing edge is implied)
    """
    px, py = points[:, None, 0], points[:, None, 1]
    x0, y0 = polygon[None, :, 0], polygon[None, :, 1]
    x1, y1 = np.roll(polygon[:, 0], -1)[None], np.roll(polygon[:, 1], -1)[None]
    cross = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
    on_edge = (
        (cross == 0)
        & (np.minimum(x0, x1) <= px)
        & (px <= np.maximum(x0, x1))
        & (np.minimum(y0, y1) <= py)
        & (py <= np.maximum(y0, y1))
    )
    straddles = (y0 > py) != (y1 > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
    crossings = (straddles & (px < x_at)).sum(axis=1)
    return (crossings % 2 == 1) & ~on_edge.any(axis=1)


def inside_any(points: npt.NDArray[np.float64], polygons: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.bool_]:
    """True where a point lies strictly inside at least one polygon (the boundary is outside).

    A polygon with fewer than three points has no interior (shapely refuses to build one; poseval crashes).

    Shapes:
        points: Float[n, 2]
        polygons: list of Float[k, 2]
        return: Bool[n]
    """
    inside = np.zeros(len(points), dtype=bool)
    if len(points) == 0:
        return inside
    for polygon in polygons:
        if len(polygon) >= 3:
            inside |= _strictly_inside(points, polygon)
    return inside
