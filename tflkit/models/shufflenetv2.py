"""ShuffleNet V2 (Ma et al., 2018), layer for layer as torchvision's `shufflenet_v2_x0_5 .. x2_0`.

torchvision at 224x224 with 1000 classes: x0_5 1,366,792 parameters / 0.04 GMACs, x1_0 2,278,604 / 0.145,
x1_5 3,503,624 / 0.296, x2_0 7,393,996 / 0.583.
The channel split and shuffle are Reshape, Cropping2D and Permute layers (no Lambda), so tfmot and the int8
converter see plain layers: split = view channels as (2, C/2) and crop one half; shuffle = transpose (2, C/2).
"""

from __future__ import annotations

from tflkit.models.layers import conv_bn_act, dwconv_bn_act, normalize, pooled_stem
from tflkit.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model

_BN = dict(bn_eps=1e-5, bn_momentum=0.9)
_DEPTHS = (4, 8, 4)

_SMALL_INPUT_NOTE = "stem conv at stride 1 and no max-pool (total stride 8 instead of 32): 32x32 input ends at 4x4"


def _halves(x, keras, name):
    """The two channel halves of x, as torch.chunk(2, dim=1): a view as (H*W, 2, C/2), cropped one row each."""
    h, w, c = x.shape[1:]
    v = keras.layers.Reshape((h * w, 2, c // 2), name=f"{name}_split_view")(x)
    first = keras.layers.Cropping2D(((0, 0), (0, 1)), name=f"{name}_split_first")(v)
    second = keras.layers.Cropping2D(((0, 0), (1, 0)), name=f"{name}_split_second")(v)
    first = keras.layers.Reshape((h, w, c // 2), name=f"{name}_split_first_hwc")(first)
    second = keras.layers.Reshape((h, w, c // 2), name=f"{name}_split_second_hwc")(second)
    return first, second


def _channel_shuffle(x, keras, name):
    """torchvision's channel_shuffle(x, 2): channels viewed as (2, C/2), transposed to (C/2, 2), flattened."""
    h, w, c = x.shape[1:]
    x = keras.layers.Reshape((h * w, 2, c // 2), name=f"{name}_shuffle_view")(x)
    x = keras.layers.Permute((1, 3, 2), name=f"{name}_shuffle_transpose")(x)
    return keras.layers.Reshape((h, w, c), name=f"{name}_shuffle_flatten")(x)


def _inverted_residual(x, out_channels, stride, keras, name):
    branch = out_channels // 2
    if stride == 1:
        left, right = _halves(x, keras, name)
    else:
        left = dwconv_bn_act(x, 3, stride, None, keras, f"{name}_branch1_dw", **_BN)
        left = conv_bn_act(left, branch, 1, 1, "relu", keras, f"{name}_branch1_pw", **_BN)
        right = x
    right = conv_bn_act(right, branch, 1, 1, "relu", keras, f"{name}_branch2_pw1", **_BN)
    right = dwconv_bn_act(right, 3, stride, None, keras, f"{name}_branch2_dw", **_BN)
    right = conv_bn_act(right, branch, 1, 1, "relu", keras, f"{name}_branch2_pw2", **_BN)
    x = keras.layers.Concatenate(name=f"{name}_concat")([left, right])
    return _channel_shuffle(x, keras, name)


def build_shufflenetv2(depths, widths, *, num_classes, image_size, small_input, keras, name="shufflenetv2"):
    """widths: stem, one per stage, and the last 1x1 conv (torchvision's stages_out_channels)."""
    if len(widths) != len(depths) + 2:
        raise ValueError(f"widths {widths!r} must have len(depths) + 2 = {len(depths) + 2} entries")
    if any(w % 2 for w in widths[1:-1]):
        raise ValueError(f"stage widths must be even to split in two, got {widths[1:-1]!r}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = normalize(inputs, IMAGENET_MEAN, IMAGENET_STD, keras)
    x = pooled_stem(x, widths[0], 3, small_input, keras, **_BN)
    for s, (depth, channels) in enumerate(zip(depths, widths[1:-1])):
        for b in range(depth):
            x = _inverted_residual(x, channels, 2 if b == 0 else 1, keras, f"stage{s + 2}_{b}")
    x = conv_bn_act(x, widths[-1], 1, 1, "relu", keras, "conv5", **_BN)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def _entry(name, widths, *, num_classes, image_size, small_input, keras):
    return build_shufflenetv2(_DEPTHS, widths, num_classes=num_classes, image_size=image_size,
                              small_input=small_input, keras=keras, name=name)


def _spec(params, macs, variant):
    return dict(reference=f"torchvision shufflenet_v2_{variant}", reference_params=params, reference_macs=macs,
                small_input_note=_SMALL_INPUT_NOTE)


@register_model("shufflenetv2", **_spec(1_366_792, 40_000_000, "x0_5"))  # torchvision rounds this one to 0.04 G
def shufflenetv2_x0_5(**kw):
    return _entry("shufflenetv2_x0_5", (24, 48, 96, 192, 1024), **kw)


@register_model("shufflenetv2", **_spec(2_278_604, 145_000_000, "x1_0"))
def shufflenetv2_x1_0(**kw):
    return _entry("shufflenetv2_x1_0", (24, 116, 232, 464, 1024), **kw)


@register_model("shufflenetv2", **_spec(3_503_624, 296_000_000, "x1_5"))
def shufflenetv2_x1_5(**kw):
    return _entry("shufflenetv2_x1_5", (24, 176, 352, 704, 1024), **kw)


@register_model("shufflenetv2", **_spec(7_393_996, 583_000_000, "x2_0"))
def shufflenetv2_x2_0(**kw):
    return _entry("shufflenetv2_x2_0", (24, 244, 488, 976, 2048), **kw)


@register_model(
    "shufflenetv2", default_image_size=32, default_num_classes=10, small_input_note=_SMALL_INPUT_NOTE,
    test_variant=True,
)
def test_shufflenetv2(*, num_classes, image_size, small_input, keras):
    """Two stages of two blocks (one downsampling, one split-and-shuffle), eight and sixteen channels."""
    return build_shufflenetv2((2, 2), (8, 8, 16, 32), num_classes=num_classes, image_size=image_size,
                              small_input=small_input, keras=keras, name="test_shufflenetv2")
