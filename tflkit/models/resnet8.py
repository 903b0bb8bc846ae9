"""ResNet-8 for CIFAR-10, the MLPerf Tiny image-classification reference, layer for layer as `resnet_v1_eembc` in
mlcommons/tiny (benchmark/training/image_classification/keras_model.py, with its original 16 first-stack filters:
the benchmark's pretrainedResnet model; the repository's train.py now trains a 26-filter variant by default).

Reference (their code built in Keras): 78,186 trainable parameters, 480 BatchNorm moving statistics (Keras' total
78,666) and 12,501,632 MACs at 32x32 with 10 classes. tests/test_resnet8.py builds a copy of their function and
compares parameters, layer types and output shapes.

Where tflkit's conventions differ, and why it is still the same function:
- The first layer is tflkit's frozen pixel normalization (every registry model eats raw 0..255 pixels). The
  reference also takes raw 0..255 pixels, unscaled (its ImageDataGenerator has no featurewise options), so the
  layer here is the identity, mean 0 and std 1: 6 non-trainable weights and 3,072 MACs that the reference lacks.
- The classifier returns logits, as every registry model does (tflkit trains with `from_logits=True`); the
  reference's Dense has `activation='softmax'`. Apply a softmax to compare probabilities.
- The convolutions keep the reference's own choices rather than tflkit's torchvision ones: a bias before every
  BatchNorm, Keras' BatchNorm defaults (epsilon 1e-3, momentum 0.99), he_normal kernels, L2 1e-4 on every conv
  kernel (as `model.losses`, which `fit` adds), and Keras 'same' padding also at stride 2 (for even sizes it pads
  only bottom/right, where PyTorch pads both sides): exact for their trained weights and their TFLite graph.
- The head is AveragePooling2D over the whole last map, then Flatten, as theirs (TFLite AVERAGE_POOL_2D and
  RESHAPE, not MEAN); equal to a global average pool.
"""

from __future__ import annotations

from tflkit.models.layers import normalize
from tflkit.models.registry import Normalization, register_model

# The reference feeds the raw pixels straight into its first conv.
RAW_PIXELS = Normalization("raw_pixels", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

L2 = 1e-4  # kernel_regularizer=l2(1e-4) on every conv; the Dense has none

_SMALL_INPUT_NOTE = "nothing to change: already the CIFAR layout (3x3 stride-1 stem, no pool), 32x32 ends at 8x8"

# The MLPerf Tiny recipe (train.py): Adam, lr 1e-3 * 0.99 ** epoch (a LearningRateScheduler), batch 32, 500 epochs,
# categorical cross-entropy, augmentation by ImageDataGenerator (rotation 15 degrees, width/height shift 0.1,
# horizontal flip). Here: all of it but the epochs (500 would be every run's length, the demo's included; pass
# `--epochs 500` for theirs) and the augmentation (no preset rotates; `--augment basic`, pad-crop 4 px and flip,
# is the nearest). tflkit's step schedule with step_epochs 1 gives exactly 1e-3 * 0.99 ** epoch.
MLPERF_TINY_RECIPE = {"optimizer": "adam", "lr": 1e-3, "lr_schedule": "step", "step_epochs": 1, "step_gamma": 0.99,
                      "batch_size": 32}


def _conv(x, filters, kernel_size, stride, keras, name):
    return keras.layers.Conv2D(
        filters, kernel_size, strides=stride, padding="same", kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(L2), name=name,
    )(x)


def _stack(x, filters, stride, keras, name):
    """Two 3x3 convs and a residual; a 1x1 projection on the shortcut where the stack downsamples."""
    y = _conv(x, filters, 3, stride, keras, f"{name}_conv1")
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.Activation("relu", name=f"{name}_relu1")(y)
    y = _conv(y, filters, 3, 1, keras, f"{name}_conv2")
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        x = _conv(x, filters, 1, stride, keras, f"{name}_shortcut")  # no BatchNorm on it, as the reference
    x = keras.layers.Add(name=f"{name}_add")([x, y])
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def build_resnet_eembc(widths, *, num_classes, image_size, keras, name="resnet8"):
    """The reference's stem (3x3 conv, `widths[0]` filters) and one stack per width, each after the first at
    stride 2 (their `conv_filters` argument is widths[0], doubled per stack)."""
    if not widths:
        raise ValueError(f"widths must name at least one stack, got {widths!r}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = normalize(inputs, RAW_PIXELS.mean, RAW_PIXELS.std, keras)
    x = _conv(x, widths[0], 3, 1, keras, "stem_conv")
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    for s, filters in enumerate(widths):
        x = _stack(x, filters, 1 if s == 0 else 2, keras, f"stack{s + 1}")
    x = keras.layers.AveragePooling2D(pool_size=int(min(x.shape[1:3])), name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    # logits (tflkit's convention); the reference ends in softmax
    outputs = keras.layers.Dense(num_classes, kernel_initializer="he_normal", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    "resnet8",
    default_image_size=32,
    default_num_classes=10,
    normalization=RAW_PIXELS,
    reference="MLPerf Tiny resnet_v1_eembc (mlcommons/tiny, Keras; 16 filters)",
    reference_params=78_186,  # trainable, as count_params counts; +480 BatchNorm statistics in Keras' total
    reference_macs=12_501_632,
    small_input_note=_SMALL_INPUT_NOTE,
    train_defaults=MLPERF_TINY_RECIPE,
)
def resnet8(*, num_classes, image_size, small_input, keras):
    return build_resnet_eembc((16, 32, 64), num_classes=num_classes, image_size=image_size, keras=keras)
