"""The position-embedding resize: the grid it assumes, what interpolation keeps, and its refusals."""

import pytest
import torch
from hypothesis import given, settings
from timm.layers import resample_abs_pos_embed

from tests.strategies import token_grids
from vremd_models.weights.pos_embed import guess_grid, resize_pos_embed


def test_the_grid_is_the_targets_then_square_then_unknown():
    assert guess_grid(12, (4, 3)) == (4, 3)
    assert guess_grid(36, (4, 3)) == (6, 6)
    assert guess_grid(10, (4, 3)) is None
    assert guess_grid(0, (4, 3)) is None


@settings(max_examples=25, deadline=None)
@given(source=token_grids(8, 8), target=token_grids(8, 8))
def test_a_constant_embedding_stays_constant_on_any_grid(source, target):
    pos_embed = torch.full((1, source[0] * source[1], 5), 0.25)
    resized = resize_pos_embed(pos_embed, target, source)
    assert resized.shape == (1, target[0] * target[1], 5)
    torch.testing.assert_close(resized, torch.full_like(resized, 0.25))


def test_the_same_grid_is_returned_unchanged_and_another_is_bicubic():
    pos_embed = torch.randn(1, 36, 4)
    assert resize_pos_embed(pos_embed, (6, 6)) is pos_embed
    expected = resample_abs_pos_embed(pos_embed, new_size=[4, 3], old_size=[6, 6], num_prefix_tokens=0)
    torch.testing.assert_close(resize_pos_embed(pos_embed, (4, 3)), expected)
    rectangular = torch.randn(1, 20, 4)
    expected = resample_abs_pos_embed(rectangular, new_size=[4, 3], old_size=[5, 4], num_prefix_tokens=0)
    torch.testing.assert_close(resize_pos_embed(rectangular, (4, 3), (5, 4)), expected)


def test_refusals_say_why():
    with pytest.raises(ValueError, match=r"pos_embed must be \(1, N, D\), got \[2, 12, 4\]"):
        resize_pos_embed(torch.zeros(2, 12, 4), (4, 3))
    with pytest.raises(ValueError, match=r"holds 10 positions, neither the model's grid \(4, 3\) nor square"):
        resize_pos_embed(torch.zeros(1, 10, 4), (4, 3))
    with pytest.raises(ValueError, match=r"source_grid \(3, 3\) does not hold the 10 positions"):
        resize_pos_embed(torch.zeros(1, 10, 4), (4, 3), (3, 3))
