"""Ignore regions: which points lie strictly inside a polygon (shapely's ``Polygon.contains(Point)``).

Points and polygons of many frames are tested in one pass: each point only against the edges of its own
frame's polygons, as flat (point, edge) pairs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["inside_any", "inside_any_by_frame"]


def inside_any_by_frame(
    points: npt.NDArray[np.float64],
    point_frame: npt.NDArray[np.int64],
    regions: dict[int, list[npt.NDArray[np.float64]]],
) -> npt.NDArray[np.bool_]:
    """True where a point lies strictly inside one of its frame's polygons (the boundary is outside).

    Even-odd ray casting; a point on an edge or vertex of a polygon is not inside that polygon. A polygon
    with fewer than three points has no interior (shapely refuses to build one; poseval crashes).

    Shapes:
        points: Float[n, 2]
        point_frame: Int[n] (any order)
        regions: frame -> list of Float[k, 2] (open rings: the closing edge is implied)
        return: Bool[n]
    """
    inside = np.zeros(len(points), dtype=bool)
    starts, stops, polygons, frames = [], [], [], []
    for frame in sorted(regions):
        for polygon in regions[frame]:
            if len(polygon) >= 3:
                starts.append(polygon)
                stops.append(np.concatenate([polygon[1:], polygon[:1]]))
                polygons.append(np.full(len(polygon), len(polygons)))
                frames.append(np.full(len(polygon), frame))
    if not starts or len(points) == 0:
        return inside
    p0, p1 = np.concatenate(starts), np.concatenate(stops)
    edge_polygon, edge_frame = np.concatenate(polygons), np.concatenate(frames)
    # pairs (point, edge of the point's frame), grouped by point then polygon
    lo = np.searchsorted(edge_frame, point_frame, side="left")
    count = np.searchsorted(edge_frame, point_frame, side="right") - lo
    pair_point = np.repeat(np.arange(len(points)), count)
    if len(pair_point) == 0:
        return inside
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    pair_edge = lo[pair_point] + np.arange(len(pair_point)) - first[pair_point]
    px, py = points[pair_point, 0], points[pair_point, 1]
    x0, y0, x1, y1 = p0[pair_edge, 0], p0[pair_edge, 1], p1[pair_edge, 0], p1[pair_edge, 1]
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
    crossing = straddles & (px < x_at)
    key_changes = np.flatnonzero(
        np.r_[True, (pair_point[1:] != pair_point[:-1]) | (edge_polygon[pair_edge][1:] != edge_polygon[pair_edge][:-1])]
    )
    crossings = np.add.reduceat(crossing.astype(np.int64), key_changes)
    boundary = np.maximum.reduceat(on_edge.astype(np.int8), key_changes).astype(bool)
    in_polygon = (crossings % 2 == 1) & ~boundary
    np.logical_or.at(inside, pair_point[key_changes], in_polygon)
    return inside


def inside_any(points: npt.NDArray[np.float64], polygons: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.bool_]:
    """True where a point lies strictly inside at least one polygon (the boundary is outside).

    Shapes:
        points: Float[n, 2]
        polygons: list of Float[k, 2]
        return: Bool[n]
    """
    return inside_any_by_frame(points, np.zeros(len(points), dtype=np.int64), {0: polygons})
