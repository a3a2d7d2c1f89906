"""The shared image -> model input conversion."""

import numpy as np
import torch

from defectkd.core.tensors import image_tensor


def test_image_tensor_is_chw_float_in_unit_range_and_a_copy():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[1, 2] = (255, 51, 0)
    x = image_tensor(rgb[:, ::-1])  # a negative-stride view must work too
    assert x.shape == (3, 2, 3) and x.dtype == torch.float32 and x.is_contiguous()
    assert torch.allclose(x[:, 1, 0], torch.tensor([1.0, 0.2, 0.0])) and abs(float(x.sum()) - 1.2) < 1e-6
    x.mul_(0)
    assert rgb[1, 2, 0] == 255
