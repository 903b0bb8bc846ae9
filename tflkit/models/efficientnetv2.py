"""EfficientNetV2 (Tan & Le, 2021), layer for layer as torchvision's `efficientnet_v2_s`.

torchvision efficientnet_v2_s: 21,458,488 parameters and 8.366 GMACs at 384x384 with 1000 classes.
keras.applications EfficientNetV2S has the same 21,458,488 trainable parameters (its 21,612,360 total adds the
BatchNorm moving statistics); it differs in padding ('same', asymmetric) where this follows torchvision's symmetric
padding so the PyTorch weights port exactly.
"""

from __future__ import annotations

from tflkit.models.layers import conv_bn_act, dwconv_bn_act, normalize, squeeze_excite
from tflkit.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model

# torchvision: BatchNorm2d(eps=1e-3), default momentum 0.1 (Keras' momentum is PyTorch's complement).
_BN = dict(bn_eps=1e-3, bn_momentum=0.9)

# block kind, expand ratio, kernel, stride, output channels, repeats (torchvision's _efficientnet_conf("v2_s"))
_V2_S = (
    ("fused", 1, 3, 1, 24, 2),
    ("fused", 4, 3, 2, 48, 4),
    ("fused", 4, 3, 2, 64, 4),
    ("mb", 4, 3, 2, 128, 6),
    ("mb", 6, 3, 1, 160, 9),
    ("mb", 6, 3, 2, 256, 15),
)

_SMALL_INPUT_NOTE = (
    "stem and the first stride-2 stage at stride 1 (total stride 8 instead of 32): 32x32 input ends at 4x4"
)


def _fused_mbconv(x, expand, kernel, stride, out, keras, name):
    in_channels = x.shape[-1]
    if expand == 1:
        return conv_bn_act(x, out, kernel, stride, "swish", keras, f"{name}_fused", **_BN)
    x = conv_bn_act(x, in_channels * expand, kernel, stride, "swish", keras, f"{name}_fused", **_BN)
    return conv_bn_act(x, out, 1, 1, None, keras, f"{name}_project", **_BN)


def _mbconv(x, expand, kernel, stride, out, keras, name):
    in_channels = x.shape[-1]
    x = conv_bn_act(x, in_channels * expand, 1, 1, "swish", keras, f"{name}_expand", **_BN)
    x = dwconv_bn_act(x, kernel, stride, "swish", keras, f"{name}_dw", **_BN)
    x = squeeze_excite(x, max(1, in_channels // 4), keras, f"{name}_se", inner_act="swish", gate_act="sigmoid")
    return conv_bn_act(x, out, 1, 1, None, keras, f"{name}_project", **_BN)


def build_efficientnetv2(stages, stem_channels, head_channels, *, num_classes, image_size, small_input, keras,
                         dropout=0.2, stochastic_depth=0.2, name="efficientnetv2"):
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = normalize(inputs, IMAGENET_MEAN, IMAGENET_STD, keras)
    x = conv_bn_act(x, stem_channels, 3, 1 if small_input else 2, "swish", keras, "stem", **_BN)
    total_blocks = sum(stage[-1] for stage in stages)
    block_id = 0
    first_strided_stage = next(i for i, stage in enumerate(stages) if stage[3] > 1)
    for s, (kind, expand, kernel, stride, out, repeats) in enumerate(stages):
        if small_input and s == first_strided_stage:
            stride = 1
        block = _fused_mbconv if kind == "fused" else _mbconv
        for b in range(repeats):
            name_b = f"stage{s + 1}_{b}"
            block_stride = stride if b == 0 else 1
            shortcut = x
            x = block(x, expand, kernel, block_stride, out, keras, name_b)
            if block_stride == 1 and shortcut.shape[-1] == out:
                # Stochastic depth as torchvision ("row" mode): drop the whole residual branch per sample.
                rate = stochastic_depth * block_id / total_blocks
                if rate > 0:
                    x = keras.layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=f"{name_b}_drop_path")(x)
                x = keras.layers.Add(name=f"{name_b}_add")([shortcut, x])
            block_id += 1
    x = conv_bn_act(x, head_channels, 1, 1, "swish", keras, "head", **_BN)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    "efficientnetv2",
    # 20 M parameters: at tflkit's defaults 156 steps left it at chance (so did keras.applications' EfficientNetV2S);
    # a one-epoch warm-up and lr 1e-3 learn (35.79% on CIFAR-10 after 8 epochs, benchmarks/studies/cifar10_cpu).
    train_defaults={"lr": 1e-3, "warmup_epochs": 1.0},
    default_image_size=384,
    reference="torchvision efficientnet_v2_s (same trainable parameters as keras.applications EfficientNetV2S)",
    reference_params=21_458_488,
    reference_macs=8_366_000_000,
    small_input_note=_SMALL_INPUT_NOTE,
)
def efficientnetv2_s(*, num_classes, image_size, small_input, keras):
    return build_efficientnetv2(_V2_S, 24, 1280, num_classes=num_classes, image_size=image_size,
                                small_input=small_input, keras=keras, name="efficientnetv2_s")


@register_model(
    "efficientnetv2", default_image_size=32, default_num_classes=10, small_input_note=_SMALL_INPUT_NOTE,
    test_variant=True,
)
def test_efficientnetv2(*, num_classes, image_size, small_input, keras):
    """One stage of each block kind: plain fused, expanding fused (strided), MBConv with SE and a residual."""
    stages = (("fused", 1, 3, 1, 8, 1), ("fused", 4, 3, 2, 16, 1), ("mb", 4, 3, 2, 16, 2))
    return build_efficientnetv2(stages, 8, 32, num_classes=num_classes, image_size=image_size,
                                small_input=small_input, keras=keras, name="test_efficientnetv2")
