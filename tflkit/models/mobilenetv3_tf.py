"""MobileNetV3-Small in the TF-slim / keras.applications layout (`MobileNetV3Small`), beside the torchvision one.

Same blocks as torchvision's (mobilenetv3.py), laid out the TensorFlow way, so TensorFlow's own ImageNet weights
port onto it: the TF-slim model garden .tflite (`MobilenetV3/expanded_conv_N/{expand,depthwise,project,
squeeze_excite}`) and keras.applications' .h5. Layer names are keras.applications' (Keras 3 spelling:
`conv`, `expanded_conv_3_depthwise_bn`, `conv_1`, `conv_2`, `logits`). Differences from torchvision's layout:
TF 'SAME' padding (a stride-2 conv pads 0 before and 1 after on even inputs, not 1 and 1), so weights do not
cross between the two; and the head's 1x1 convolutions on the pooled vector are Dense layers here (the same
parameters; keras.applications' `(1, 1, in, out)` kernels reshape onto them).

keras.applications MobileNetV3Small (weights=None, 224, 1000 classes): 2,542,856 trainable parameters, the same
count as torchvision's.
"""

from __future__ import annotations

from tflkit.models.layers import activation, hard_swish_head, make_divisible, normalize
from tflkit.models.mobilenetv3 import _SMALL_BLOCKS, _SMALL_INPUT_NOTE
from tflkit.models.registry import Normalization, register_model

# keras.applications MobileNetV3: BatchNormalization(epsilon=1e-3, momentum=0.999)
BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.999

# keras.applications' preprocessing (Rescaling(1/127.5, offset=-1)): pixels to [-1, 1]
INCEPTION = Normalization("inception", (127.5, 127.5, 127.5), (127.5, 127.5, 127.5))
# The TF-slim 8-bit .tflite's input: uint8 pixels, scale 1/127, zero point 128, i.e. (p - 128) / 127
TF_SLIM_UINT8 = Normalization("tf_slim_uint8", (128.0, 128.0, 128.0), (127.0, 127.0, 127.0))

# The block table and small-input stem are torchvision's (keras.applications' table is the same).


def _bn(x, keras, name):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=_BN_MOMENTUM, name=name)(x)


def _squeeze_excite(x, keras, prefix):
    channels = x.shape[-1]
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(x)
    s = keras.layers.Conv2D(make_divisible(channels * 0.25), 1, name=f"{prefix}squeeze_excite_conv")(s)
    s = activation(s, "relu", keras, f"{prefix}squeeze_excite_relu")
    s = keras.layers.Conv2D(channels, 1, name=f"{prefix}squeeze_excite_conv_1")(s)
    s = activation(s, "hard_sigmoid", keras, f"{prefix}squeeze_excite_hard_sigmoid")
    return keras.layers.Multiply(name=f"{prefix}squeeze_excite_mul")([x, s])


def _block(x, kernel, expanded, out, use_se, act, stride, keras, block_id):
    prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
    shortcut, in_channels = x, x.shape[-1]
    if block_id:  # keras.applications' first block has no expansion conv (its expansion is 1)
        x = keras.layers.Conv2D(expanded, 1, use_bias=False, name=f"{prefix}expand")(x)
        x = activation(_bn(x, keras, f"{prefix}expand_bn"), act, keras, f"{prefix}expand_{act}")
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                     name=f"{prefix}depthwise")(x)
    x = activation(_bn(x, keras, f"{prefix}depthwise_bn"), act, keras, f"{prefix}depthwise_{act}")
    if use_se:
        x = _squeeze_excite(x, keras, prefix)
    x = keras.layers.Conv2D(out, 1, use_bias=False, name=f"{prefix}project")(x)
    x = _bn(x, keras, f"{prefix}project_bn")
    if stride == 1 and in_channels == out:
        x = keras.layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def build_mobilenetv3_tf(blocks, *, num_classes, image_size, small_input, keras, width=1.0, dropout=0.2,
                         name="mobilenetv3_small_100_tf"):
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = normalize(inputs, INCEPTION.mean, INCEPTION.std, keras)
    x = keras.layers.Conv2D(16, 3, strides=1 if small_input else 2, padding="same", use_bias=False, name="conv")(x)
    x = activation(_bn(x, keras, "conv_bn"), "hard_swish", keras, "conv_hard_swish")
    for i, (kernel, expanded, out, use_se, act, stride) in enumerate(blocks):
        stride = 1 if small_input and i == 0 else stride
        x = _block(x, kernel, make_divisible(expanded * width), make_divisible(out * width), use_se, act, stride,
                   keras, i)
    x = keras.layers.Conv2D(make_divisible(x.shape[-1] * 6), 1, use_bias=False, name="conv_1")(x)
    x = activation(_bn(x, keras, "conv_1_bn"), "hard_swish", keras, "conv_1_hard_swish")
    # keras.applications' conv_2 is a 1x1 Conv2D on the pooled map: the same function as this Dense
    outputs = hard_swish_head(x, 1024, dropout, num_classes, keras, names=("conv_2", "conv_2_hard_swish", "dropout"))
    return keras.Model(inputs, outputs, name=name)


@register_model(
    "mobilenetv3",
    default_image_size=224,
    normalization=INCEPTION,
    pretrained_normalization=TF_SLIM_UINT8,
    reference="keras.applications MobileNetV3Small (TF-slim layout; weights from the TF-slim .tflite)",
    reference_params=2_542_856,
    reference_macs=56_522_000,
    small_input_note=_SMALL_INPUT_NOTE,
)
def mobilenetv3_small_100_tf(*, num_classes, image_size, small_input, keras):
    return build_mobilenetv3_tf(_SMALL_BLOCKS, num_classes=num_classes, image_size=image_size,
                                small_input=small_input, keras=keras)

