"""ResNet (He et al., 2015) with basic blocks, layer for layer as torchvision's `resnet18`.

torchvision resnet18: 11,689,512 parameters and 1.814 GMACs at 224x224 with 1000 classes.
"""

from __future__ import annotations

from tflkit.models.layers import conv_bn_act, normalize, pooled_stem
from tflkit.models.registry import IMAGENET_MEAN, IMAGENET_STD, register_model

# torchvision BatchNorm2d defaults: eps 1e-5, momentum 0.1 (Keras' momentum is PyTorch's complement).
_BN = dict(bn_eps=1e-5, bn_momentum=0.9)

_SMALL_INPUT_NOTE = "3x3 stride-1 stem conv and no max-pool (total stride 8 instead of 32): 32x32 input ends at 4x4"


def _basic_block(x, filters, stride, keras, name):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv_bn_act(x, filters, 1, stride, None, keras, f"{name}_downsample", **_BN)
    x = conv_bn_act(x, filters, 3, stride, "relu", keras, f"{name}_conv1", **_BN)
    x = conv_bn_act(x, filters, 3, 1, None, keras, f"{name}_conv2", **_BN)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def build_resnet(depths, widths, *, num_classes, image_size, small_input, keras, name="resnet"):
    if len(depths) != len(widths):
        raise ValueError(f"depths {depths!r} and widths {widths!r} must have the same length")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = normalize(inputs, IMAGENET_MEAN, IMAGENET_STD, keras)
    x = pooled_stem(x, widths[0], 7, small_input, keras, **_BN)
    for s, (depth, filters) in enumerate(zip(depths, widths)):
        for b in range(depth):
            stride = 2 if s > 0 and b == 0 else 1
            x = _basic_block(x, filters, stride, keras, f"layer{s + 1}_{b}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    "resnet",
    reference="torchvision resnet18",
    reference_params=11_689_512,
    reference_macs=1_814_000_000,
    small_input_note=_SMALL_INPUT_NOTE,
)
def resnet18(*, num_classes, image_size, small_input, keras):
    return build_resnet((2, 2, 2, 2), (64, 128, 256, 512), num_classes=num_classes, image_size=image_size,
                        small_input=small_input, keras=keras, name="resnet18")


@register_model(
    "resnet", default_image_size=32, default_num_classes=10, small_input_note=_SMALL_INPUT_NOTE, test_variant=True
)
def test_resnet(*, num_classes, image_size, small_input, keras):
    """Two narrow stages of one basic block each: a stride-1 block and a downsampling one."""
    return build_resnet((1, 1), (8, 16), num_classes=num_classes, image_size=image_size, small_input=small_input,
                        keras=keras, name="test_resnet")
