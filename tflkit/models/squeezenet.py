"""SqueezeNet (Iandola et al., 2016), versions 1.0 and 1.1, layer for layer as torchvision's `squeezenet1_0/1_1`.

torchvision: squeezenet1_0 1,248,424 parameters / 0.819 GMACs, squeezenet1_1 1,235,496 / 0.349 GMACs at 224x224.
Layer names follow the original Caffe model and its Keras port (`conv1`, `fire2_squeeze1x1`, `fire2_expand1x1`,
`fire2_expand3x3`, ..., `conv10`), and the convolutions keep their biases and have no BatchNorm, so the published
ImageNet weights load by name.

Normalization: built, both versions do torchvision's ImageNet normalization ((x - mean) / std). The published
SqueezeNet 1.1 ImageNet weights (Caffe, through rcmalli/keras-squeezenet, ported by tflkit/weights/load.py) were
trained on BGR pixels minus the Caffe mean, unscaled. Porting them keeps RGB input (conv1's input channels are
reversed) and sets the normalization layer to `CAFFE`: the RGB mean subtracted, std 1. The spec records both; the
model card reads what the exported model actually does from its normalization layer.
"""

from __future__ import annotations

import math

from tflkit.models.layers import normalize
from tflkit.models.registry import IMAGENET_MEAN, IMAGENET_STD, Normalization, register_model

# Caffe's ImageNet mean (keras.applications' "caffe" preprocessing: BGR 103.939, 116.779, 123.68), in RGB order,
# and no scaling: what the ported Caffe SqueezeNet 1.1 weights expect once conv1 reads RGB.
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
CAFFE = Normalization("caffe", CAFFE_MEAN_RGB, (1.0, 1.0, 1.0))

_SMALL_INPUT_NOTE = (
    "conv1 at stride 1 with same padding (total stride 8 instead of 16): 32x32 input ends at 4x4"
)

# Fire modules as (squeeze, expand) channels, numbered from fire2 like the paper; "pool" is a 3x3/2 max-pool.
_V1_0 = dict(stem=(96, 7), body=("pool", (16, 64), (16, 64), (32, 128), "pool", (32, 128), (48, 192), (48, 192),
                                 (64, 256), "pool", (64, 256)))
_V1_1 = dict(stem=(64, 3), body=("pool", (16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool", (48, 192),
                                 (48, 192), (64, 256), (64, 256)))


def _conv_relu(x, filters, kernel_size, keras, name, strides=1, padding="valid", init=None):
    # torchvision's initialization: kaiming_uniform_ (He) for every convolution. With no BatchNorm to rescale
    # them, Keras' default Glorot weights shrink the signal about 1,000-fold by conv10 and the net never leaves
    # chance when trained from scratch.
    init = init or keras.initializers.VarianceScaling(2.0, "fan_in", "uniform")
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, kernel_initializer=init,
                            name=name)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _fire(x, squeeze, expand, keras, name):
    s = _conv_relu(x, squeeze, 1, keras, f"{name}_squeeze1x1")
    e1 = _conv_relu(s, expand, 1, keras, f"{name}_expand1x1")
    e3 = _conv_relu(s, expand, 3, keras, f"{name}_expand3x3", padding="same")
    return keras.layers.Concatenate(name=f"{name}_concat")([e1, e3])


def _ceil_max_pool(x, keras, name):
    """3x3/2 max-pool with PyTorch's ceil_mode=True: a last, partial window is kept.

    The partial window is padded on the bottom/right with zeros, which cannot win the max after a ReLU.
    """
    extra = [(math.ceil((n - 3) / 2) * 2 + 3) - n for n in x.shape[1:3]]
    if any(extra):
        x = keras.layers.ZeroPadding2D(((0, extra[0]), (0, extra[1])), name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name=name)(x)


def build_squeezenet(config, *, num_classes, image_size, small_input, keras, dropout=0.5, name="squeezenet"):
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = normalize(inputs, IMAGENET_MEAN, IMAGENET_STD, keras)
    filters, kernel = config["stem"]
    if small_input:
        x = _conv_relu(x, filters, kernel, keras, "conv1", padding="same")
    else:
        x = _conv_relu(x, filters, kernel, keras, "conv1", strides=2)
    fire_index, pool_index = 2, 1
    for item in config["body"]:
        if item == "pool":
            x = _ceil_max_pool(x, keras, f"pool{pool_index}")
            pool_index += 1
        else:
            x = _fire(x, *item, keras, f"fire{fire_index}")
            fire_index += 1
    x = keras.layers.Dropout(dropout, name="drop9")(x)
    # torchvision: the classifier convolution starts from normal(0, 0.01)
    x = _conv_relu(x, num_classes, 1, keras, "conv10", init=keras.initializers.RandomNormal(0.0, 0.01))
    # A ReLU before the average makes the logits non-negative: that is the reference architecture.
    outputs = keras.layers.GlobalAveragePooling2D(name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


# No BatchNorm: with Adam at tflkit's 1e-3 (or 2e-3) the classifier's ReLU dies in the first steps and the net
# stays at chance (loss 2.3026 throughout); 5e-4 with half an epoch of warm-up learns (CIFAR-10, 5,000 images,
# 64x64: 26% val after 2 epochs, benchmarks/studies/cifar10_cpu.yaml).
SHORT_RUN = {"lr": 5e-4, "warmup_epochs": 0.5}


def _entry(config, name: str):
    """The registry entry point of SqueezeNet `config` (_V1_0 or _V1_1), registered under `name`."""

    def build(*, num_classes, image_size, small_input, keras):
        return build_squeezenet(config, num_classes=num_classes, image_size=image_size, small_input=small_input,
                                keras=keras, name=name)

    build.__name__ = build.__qualname__ = name
    return build


# torchvision's two SqueezeNets; 1.1's ImageNet weights here are the Caffe port's (mean-subtracted pixels)
for _name, _config, _params, _macs, _extra in (
    ("squeezenet1_0", _V1_0, 1_248_424, 819_000_000, {}),
    ("squeezenet1_1", _V1_1, 1_235_496, 349_000_000, {"pretrained_normalization": CAFFE}),
):
    register_model("squeezenet", train_defaults=SHORT_RUN, reference=f"torchvision {_name}", reference_params=_params,
                   reference_macs=_macs, small_input_note=_SMALL_INPUT_NOTE, **_extra)(_entry(_config, _name))


@register_model(
    "squeezenet", default_image_size=32, default_num_classes=10, small_input_note=_SMALL_INPUT_NOTE,
    test_variant=True,
)
def test_squeezenet(*, num_classes, image_size, small_input, keras):
    """Version 1.1's layout with three narrow fire modules and both pool kinds (plain and ceil-padded)."""
    config = dict(stem=(8, 3), body=("pool", (4, 8), "pool", (4, 8), (8, 16)))
    return build_squeezenet(config, num_classes=num_classes, image_size=image_size, small_input=small_input,
                            keras=keras, name="test_squeezenet")
