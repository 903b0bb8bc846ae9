"""MobileNetV3-Small (Howard et al., 2019), layer for layer as torchvision's `mobilenet_v3_small`.

torchvision: 2,542,856 parameters and 0.057 GMACs at 224x224 with 1000 classes.
"""

from __future__ import annotations

from tflkit.models.layers import (
    conv_bn_act,
    dwconv_bn_act,
    hard_swish_head,
    make_divisible,
    normalize,
    squeeze_excite,
)
from tflkit.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model

# torchvision uses BatchNorm(eps=0.001, momentum=0.01); Keras' momentum is PyTorch's complement.
_BN = dict(bn_eps=1e-3, bn_momentum=0.99)

# kernel, expanded channels, output channels, squeeze-excite, activation, stride
_SMALL_BLOCKS = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hard_swish", 2),
    (5, 240, 40, True, "hard_swish", 1),
    (5, 240, 40, True, "hard_swish", 1),
    (5, 120, 48, True, "hard_swish", 1),
    (5, 144, 48, True, "hard_swish", 1),
    (5, 288, 96, True, "hard_swish", 2),
    (5, 576, 96, True, "hard_swish", 1),
    (5, 576, 96, True, "hard_swish", 1),
)

_SMALL_INPUT_NOTE = "stem and first block at stride 1 (total stride 8 instead of 32): 32x32 input ends at 4x4"


def _inverted_residual(x, kernel, expanded, out, use_se, act, stride, keras, name):
    shortcut = x
    in_channels = x.shape[-1]
    if expanded != in_channels:
        x = conv_bn_act(x, expanded, 1, 1, act, keras, f"{name}_expand", **_BN)
    x = dwconv_bn_act(x, kernel, stride, act, keras, f"{name}_dw", **_BN)
    if use_se:
        x = squeeze_excite(x, make_divisible(expanded // 4, 8), keras, f"{name}_se")
    x = conv_bn_act(x, out, 1, 1, None, keras, f"{name}_project", **_BN)
    if stride == 1 and in_channels == out:
        x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def build_mobilenetv3(blocks, stem_channels, last_channels, head_channels, *, num_classes, image_size, small_input,
                      keras, width=1.0, dropout=0.2, name="mobilenetv3"):
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = normalize(inputs, IMAGENET_MEAN, IMAGENET_STD, keras)
    stem_stride = 1 if small_input else 2
    x = conv_bn_act(x, make_divisible(stem_channels * width), 3, stem_stride, "hard_swish", keras, "stem", **_BN)
    for i, (kernel, expanded, out, use_se, act, stride) in enumerate(blocks):
        if small_input and i == 0:
            stride = 1
        x = _inverted_residual(
            x, kernel, make_divisible(expanded * width), make_divisible(out * width), use_se, act, stride, keras,
            f"block{i}",
        )
    x = conv_bn_act(x, make_divisible(last_channels * width), 1, 1, "hard_swish", keras, "last", **_BN)
    return keras.Model(inputs, hard_swish_head(x, head_channels, dropout, num_classes, keras), name=name)


def _small(width: float, name: str):
    """The entry point of MobileNetV3-Small at `width` (registered under `name`)."""

    def build(*, num_classes, image_size, small_input, keras):
        return build_mobilenetv3(_SMALL_BLOCKS, 16, 576, 1024, num_classes=num_classes, image_size=image_size,
                                 small_input=small_input, keras=keras, width=width, name=name)

    build.__name__ = build.__qualname__ = name
    return build


# MobileNetV3-Small at the widths timm publishes, all in torchvision's layout (1.0 is torchvision's own model).
for _width, _reference, _figures in (
    (1.0, "torchvision mobilenet_v3_small", {"reference_params": 2_542_856, "reference_macs": 56_522_000}),
    (0.5, "timm mobilenetv3_small_050 (torchvision layout at width 0.5)", {}),
    (0.75, "timm mobilenetv3_small_075 (torchvision layout at width 0.75)", {}),
):
    register_model("mobilenetv3", default_image_size=224, reference=_reference, small_input_note=_SMALL_INPUT_NOTE,
                   **_figures)(_small(_width, f"mobilenetv3_small_{round(100 * _width):03d}"))


@register_model(
    "mobilenetv3",
    default_image_size=32,
    default_num_classes=10,
    small_input_note=_SMALL_INPUT_NOTE,
    test_variant=True,
)
def test_mobilenetv3(*, num_classes, image_size, small_input, keras):
    """A quarter-width, four-block MobileNetV3 for fast tests: same block types, tiny shapes."""
    blocks = (_SMALL_BLOCKS[0], _SMALL_BLOCKS[1], _SMALL_BLOCKS[3], _SMALL_BLOCKS[4])
    return build_mobilenetv3(blocks, 16, 576, 64, num_classes=num_classes, image_size=image_size,
                             small_input=small_input, keras=keras, width=0.25, name="test_mobilenetv3")
