import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posetrack_data.geometry import (
    affine_points,
    box_to_center_scale,
    compose,
    crop_from_image_matrix,
    flip_keypoints,
    gaussian_heatmaps,
    invert_affine,
    mirror_matrix,
)
from posetrack_data.joints import FLIP_PAIRS

coords = st.floats(-2000, 4000, allow_nan=False)
sizes = st.floats(0.0, 3000, allow_nan=False)
rotations = st.floats(-90, 90, allow_nan=False)


def _hrnet_reference(center, scale, rotation, output_size):
    """HRNet's get_affine_transform, built from three point pairs with cv2 (an independent construction)."""
    out_h, out_w = output_size
    src_w = scale[0] * 200
    theta = np.deg2rad(rotation)

    def rotate(point):
        return np.array(
            [point[0] * np.cos(theta) - point[1] * np.sin(theta), point[0] * np.sin(theta) + point[1] * np.cos(theta)]
        )

    src_dir, dst_dir = rotate([0, src_w * -0.5]), np.array([0, out_w * -0.5])
    src = np.array([center, center + src_dir, np.zeros(2)], np.float32)
    out_center = np.array([out_w * 0.5, out_h * 0.5])
    dst = np.array([out_center, out_center + dst_dir, np.zeros(2)], np.float32)
    src[2] = src[1] + np.array([-(src[0] - src[1])[1], (src[0] - src[1])[0]])
    dst[2] = dst[1] + np.array([-(dst[0] - dst[1])[1], (dst[0] - dst[1])[0]])
    return cv2.getAffineTransform(src, dst)


@settings(max_examples=25, deadline=None)
@given(x=coords, y=coords, w=sizes, h=sizes, rotation=rotations, flip=st.booleans(), px=coords, py=coords)
def test_affine_inverse_round_trips_within_half_a_pixel(x, y, w, h, rotation, flip, px, py):
    center, scale = box_to_center_scale((x, y, w, h), aspect_ratio=0.75)
    crop_from_image = crop_from_image_matrix(center, scale, rotation, (256, 192))
    if flip:
        crop_from_image = compose(crop_from_image, mirror_matrix(1920))
    image_from_crop = invert_affine(crop_from_image)
    crop_points = np.array([[px, py], [0, 0], [191, 255], [96, 128]]) / 10
    back = affine_points(crop_from_image, affine_points(image_from_crop, crop_points))
    assert np.abs(back - crop_points).max() <= 0.5
    image_points = np.array([[px, py], [x, y]])
    back = affine_points(image_from_crop, affine_points(crop_from_image, image_points))
    assert np.abs(back - image_points).max() <= 0.5


@settings(max_examples=25, deadline=None)
@given(x=coords, y=coords, w=st.floats(1, 3000), h=st.floats(1, 3000), rotation=rotations)
def test_crop_matrix_equals_hrnet_three_point_construction(x, y, w, h, rotation):
    center, scale = box_to_center_scale((x, y, w, h), aspect_ratio=0.75)
    ours = crop_from_image_matrix(center, scale, rotation, (256, 192))
    reference = _hrnet_reference(center, scale, rotation, (256, 192))
    probe = np.array([center, center + np.array([w / 2, -h / 2]), center - np.array([w / 3, h / 5])])
    np.testing.assert_allclose(affine_points(ours, probe), affine_points(reference, probe), atol=0.05)


def test_box_is_fixed_to_aspect_and_enlarged_by_a_quarter():
    center, scale = box_to_center_scale((10, 20, 60, 100), aspect_ratio=0.75)
    np.testing.assert_allclose(center, [40, 70])
    np.testing.assert_allclose(scale, np.array([75, 100]) / 200 * 1.25)
    _, wide = box_to_center_scale((0, 0, 300, 100), aspect_ratio=0.75)
    np.testing.assert_allclose(wide, np.array([300, 400]) / 200 * 1.25)
    _, degenerate = box_to_center_scale((5, 5, 0, 0), aspect_ratio=0.75)
    assert (degenerate > 0).all()


keypoint_arrays = st.lists(
    st.tuples(st.floats(0, 639), st.floats(0, 479), st.sampled_from([0, 1, 2])), min_size=17, max_size=17
).map(lambda rows: np.array([(x, y, v) if v else (0, 0, 0) for x, y, v in rows], np.float32))


@settings(max_examples=25, deadline=None)
@given(keypoints=keypoint_arrays)
def test_flip_twice_is_identity_for_joints(keypoints):
    once = flip_keypoints(keypoints, 640, FLIP_PAIRS)
    np.testing.assert_allclose(flip_keypoints(once, 640, FLIP_PAIRS), keypoints, atol=1e-4)
    # A flip swaps left and right slots and mirrors x; unannotated joints stay (0, 0, 0).
    np.testing.assert_allclose(once[5, 0], 639 - keypoints[6, 0] if keypoints[6, 2] else 0, atol=1e-4)
    assert (once[once[:, 2] == 0] == 0).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), width=st.integers(2, 64), height=st.integers(1, 48))
def test_flip_twice_is_identity_for_pixels(seed, width, height):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    mirror = mirror_matrix(width)
    once = cv2.warpAffine(image, mirror, (width, height), flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(once, image[:, ::-1])
    np.testing.assert_array_equal(cv2.warpAffine(once, mirror, (width, height), flags=cv2.INTER_LINEAR), image)


@settings(max_examples=25, deadline=None)
@given(x=st.integers(0, 63), y=st.integers(0, 47))
def test_flipped_pixels_and_flipped_joints_agree(x, y):
    image = np.zeros((48, 64), np.uint8)
    image[y, x] = 255
    flipped = cv2.warpAffine(image, mirror_matrix(64), (64, 48), flags=cv2.INTER_LINEAR)
    keypoints = np.zeros((17, 3), np.float32)
    keypoints[9] = (x, y, 1)  # left wrist
    moved = flip_keypoints(keypoints, 64, FLIP_PAIRS)[10]  # becomes the right wrist
    assert flipped[int(moved[1]), int(moved[0])] == 255


@settings(max_examples=25, deadline=None)
@given(joints=st.lists(st.tuples(st.floats(0, 47), st.floats(0, 63)), min_size=17, max_size=17))
def test_heatmap_argmax_is_the_keypoint_within_a_pixel(joints):
    joints = np.array(joints)
    heatmaps, weights = gaussian_heatmaps(joints, np.ones(17), (64, 48), sigma=2.0)
    assert (weights == 1).all()
    peak = np.stack(np.unravel_index(heatmaps.reshape(17, -1).argmax(axis=1), (64, 48)), axis=1)[:, ::-1]
    assert np.abs(peak - joints).max() <= 0.5 + 1e-6
    assert heatmaps.max() <= 1.0
    assert heatmaps.min() >= 0.0


def test_heatmap_weight_is_zero_for_unannotated_or_far_outside_joints():
    joints = np.array([[10, 10], [-7, 10], [10, 70.5], [-5, 30]])
    heatmaps, weights = gaussian_heatmaps(joints, [0, 1, 1, 1], (64, 48), sigma=2.0)
    np.testing.assert_array_equal(weights, [0, 0, 0, 1])  # -5 is within 3 sigma of the border
    assert heatmaps[0].max() == 0
    assert heatmaps[1].max() == 0
    assert heatmaps[3, 30, 0] == pytest.approx(np.exp(-25 / 8))
