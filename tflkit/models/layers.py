"""Building blocks shared by the architectures, from plain Keras layers only.

Every function takes the Keras module (`keras` for Keras 3, `tf_keras` for tfmot) so one builder serves both.
No Lambda and no raw TF ops: those become TFOpLambda layers that tfmot refuses and the converter cannot name.
Stride-2 convolutions pad explicitly like PyTorch (k//2 on every side), so reference weights port exactly.
"""

from __future__ import annotations

NORMALIZE_LAYER = "normalize"


def normalize(x, mean, std, keras, name=NORMALIZE_LAYER):
    """Raw 0..255 pixels in, (x - mean) / std out: the model owns its preprocessing.

    A frozen 1x1 depthwise convolution (scale 1/std, bias -mean/std) rather than `Normalization` or `Rescaling`:
    tfmot quantizes a depthwise conv but refuses those two (and a standalone BatchNormalization). Pruning must
    skip this layer (it has three weights, all needed); its name is `NORMALIZE_LAYER`. The same layer type in
    both Keras flavours keeps Keras 3 and tf_keras weights interchangeable layer by layer.
    """
    scale = [[[[1.0 / s] for s in std]]]  # the depthwise kernel's shape, (1, 1, channels, 1)
    bias = [-m / s for m, s in zip(mean, std)]
    return keras.layers.DepthwiseConv2D(
        1, use_bias=True, trainable=False, name=name,
        depthwise_initializer=keras.initializers.Constant(scale), bias_initializer=keras.initializers.Constant(bias),
    )(x)


def activation(x, kind, keras, name):
    if kind is None:
        return x
    if kind == "relu6":
        return keras.layers.ReLU(max_value=6.0, name=name)(x)
    if kind == "hard_swish":
        return hard_swish(x, keras, name)
    if kind == "hard_sigmoid":
        return keras.layers.Activation(_hard_activation(kind, keras), name=name)(x)
    return keras.layers.Activation(kind, name=name)(x)


def hard_swish(x, keras, name):
    """x * relu6(x + 3) / 6, spelled (relu6(x + 3) * x) / 6 from Rescaling, ReLU, Multiply and Rescaling (no
    weights); the last layer carries `name`, so tensors are found by the activation's layer name.

    Why this spelling: the converter fuses `x * relu6(x + 3) / 6` and `x * hard_sigmoid(x)` into one HARD_SWISH
    op, which XNNPACK does not run in int8 (each one cut the MobileNetV3 int8 graph into another partition, 20 in
    all) and which 16x8 quantization refuses. With the gate as the product's first operand it does not match:
    the int8 file keeps ADD (relu6 fused), MUL, MUL, all delegated, and static_wi8_ai8 is one partition. Of the
    spellings that stay unfused it rounds the least: x enters the product unscaled and the gate is exactly 6
    above x = 3, so large activations pass through one rounding, as in HARD_SWISH itself. (x / 6) * relu6(x + 3),
    the spelling before, rounded x / 6 first, one more step on every activation: 81.92% int8 top-1 against
    85.16% for this one and 85.70% for the fused op, same weights, whole CIFAR-10 test split
    (benchmarks/results/hardswish_accuracy.md). Float recipes convert a twin with one HARD_SWISH per
    hard-swish instead (converters.convert.float_graph), where XNNPACK runs it as one op.
    """
    shifted = keras.layers.Rescaling(1.0, offset=3.0, name=f"{name}_plus3")(x)
    gate = keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(shifted)
    product = keras.layers.Multiply(name=f"{name}_times_x")([gate, x])
    return keras.layers.Rescaling(1.0 / 6.0, name=name)(product)


def hard_swish_op(x, keras, name):
    """Hard-swish as one layer, which the converter emits as one HARD_SWISH op: the float graph's spelling
    (converters.convert.float_graph), and the registry's before int8 needed the split one (`hard_swish`)."""
    return keras.layers.Activation("hard_swish", name=name)(x)


def _hard_activation(kind, keras):
    # Keras 3 defines hard_sigmoid as relu6(x + 3) / 6 (PyTorch's); tf_keras still uses 0.2 * x + 0.5, so there
    # the PyTorch form is spelled out (converters/twin.py swaps the lambda for a layer tfmot can clone).
    if not keras.__name__.startswith("tf_keras"):
        return kind
    import tensorflow as tf

    return lambda x: tf.nn.relu6(x + 3.0) / 6.0


def pad_for_stride(x, kernel_size, stride, keras, name):
    """PyTorch-style symmetric padding for strided convs; 'same' is identical for stride 1 with odd kernels."""
    if stride == 1 or kernel_size == 1:
        return x, "same" if kernel_size > 1 else "valid"
    p = kernel_size // 2
    return keras.layers.ZeroPadding2D(padding=p, name=f"{name}_pad")(x), "valid"


def conv_bn_act(x, filters, kernel_size, stride, act, keras, name, bn_eps=1e-5, bn_momentum=0.9, groups=1):
    x, padding = pad_for_stride(x, kernel_size, stride, keras, name)
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=stride, padding=padding, use_bias=False, groups=groups, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=bn_eps, momentum=bn_momentum, name=f"{name}_bn")(x)
    return activation(x, act, keras, f"{name}_{act}")


def pooled_stem(x, filters, kernel_size, small_input, keras, bn_eps=1e-5, bn_momentum=0.9):
    """torchvision's ResNet / ShuffleNetV2 stem: conv-BN-ReLU at stride 2, then a 3x3 stride-2 max-pool; the CIFAR
    layout (`small_input`) is one 3x3 stride-1 conv-BN-ReLU and no pool."""
    if small_input:
        return conv_bn_act(x, filters, 3, 1, "relu", keras, "stem", bn_eps, bn_momentum)
    x = conv_bn_act(x, filters, kernel_size, 2, "relu", keras, "stem", bn_eps, bn_momentum)
    # PyTorch pads max-pool with -inf; after a ReLU zeros are equivalent.
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)


def hard_swish_head(x, hidden, dropout, num_classes, keras, names=("head_fc", "head_hard_swish", "head_dropout")):
    """MobileNetV3's classifier: global average pool, a hidden Dense with hard-swish, dropout, the logits. `names`:
    the hidden Dense's, its activation's and the dropout's (torchvision's layout and TF-slim's name them apart)."""
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(hidden, name=names[0])(x)
    x = activation(x, "hard_swish", keras, names[1])
    x = keras.layers.Dropout(dropout, name=names[2])(x)
    return keras.layers.Dense(num_classes, name="logits")(x)


def dwconv_bn_act(x, kernel_size, stride, act, keras, name, bn_eps=1e-5, bn_momentum=0.9):
    x, padding = pad_for_stride(x, kernel_size, stride, keras, name)
    x = keras.layers.DepthwiseConv2D(
        kernel_size, strides=stride, padding=padding, use_bias=False, name=f"{name}_dwconv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=bn_eps, momentum=bn_momentum, name=f"{name}_bn")(x)
    return activation(x, act, keras, f"{name}_{act}")


def squeeze_excite(x, squeeze_channels, keras, name, inner_act="relu", gate_act="hard_sigmoid"):
    """Channel attention: global pool, 1x1 down, 1x1 up, gate, scale (1x1 convs with bias, as torchvision)."""
    channels = x.shape[-1]
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = keras.layers.Conv2D(squeeze_channels, 1, use_bias=True, name=f"{name}_fc1")(s)
    s = activation(s, inner_act, keras, f"{name}_{inner_act}")
    s = keras.layers.Conv2D(channels, 1, use_bias=True, name=f"{name}_fc2")(s)
    s = activation(s, gate_act, keras, f"{name}_gate")
    return keras.layers.Multiply(name=f"{name}_scale")([x, s])


def make_divisible(value, divisor=8, min_value=None):
    """Round a channel count to a multiple of `divisor`, never below 90% of it (the MobileNet rule)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new

