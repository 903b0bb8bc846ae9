"""Where each registry model's published ImageNet weights live, and how their files are checked (timm's
`pretrained_cfg`, one table). `ModelSpec.pretrained_source` reads it; tflkit/training/transfer.py downloads and
verifies.

Checksums, by what the publisher gives:
  sha256          the full digest, where known
  sha256_prefix   torchvision's files carry the first hex digits of their sha256 in the name
                  (`resnet18-f37072fd.pth`); torch.hub checks exactly that prefix (`check_hash=True`), and so does
                  tflkit: the downloaded file's sha256 must start with it
  md5             keras.applications publishes MD5s (its `WEIGHTS_HASHES`), which Keras' own get_file checks

Layouts: torchvision .pth files port onto the torchvision-layout entries (tflkit/weights/pth_port.py, read without
torch); keras.applications' MobileNetV3Small .h5 onto `mobilenetv3_small_100_tf` by its layer names; the
SqueezeNet 1.1 Keras-1 file by tflkit/weights/load.py. No ImageNet weights are published for the registry's
MobileNetV3-Small at widths 0.5 and 0.75 (torchvision's layout scaled): timm's `mobilenetv3_small_050/075` files
round channels from the already-scaled input (block 2 expands to 56 channels at 0.5 where this layout has 48), so
their shapes do not fit; those two entries have no source and say so.
"""

from __future__ import annotations

from dataclasses import dataclass

TORCHVISION = "https://download.pytorch.org/models/"
KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class WeightSource:
    url: str
    format: str  # torchvision_pth, keras_applications_h5, keras1_squeezenet_h5
    sha256: str | None = None
    sha256_prefix: str | None = None
    md5: str | None = None
    classes: int = 1000  # the head the file carries (0: none, a notop file)
    note: str = ""

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _torchvision(filename: str, note: str = "", sha256: str | None = None) -> WeightSource:
    prefix = filename.rsplit("-", 1)[-1].split(".")[0]  # torch.hub's HASH_REGEX: the digits after the last '-'
    return WeightSource(TORCHVISION + filename, "torchvision_pth", sha256=sha256, sha256_prefix=prefix, note=note)


IMAGENET_SOURCES: dict[str, WeightSource] = {
    # Full digests where public projects pin them (several agree for each); the rest check torch.hub's prefix.
    "resnet18": _torchvision("resnet18-f37072fd.pth", "torchvision ResNet18_Weights.IMAGENET1K_V1",
                             sha256="f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec"),
    "shufflenetv2_x0_5": _torchvision("shufflenetv2_x0.5-f707e7126e.pth"),
    "shufflenetv2_x1_0": _torchvision("shufflenetv2_x1-5666bf0f80.pth"),
    "shufflenetv2_x1_5": _torchvision("shufflenetv2_x1_5-3c479a10.pth"),
    "shufflenetv2_x2_0": _torchvision("shufflenetv2_x2_0-8be3c8ee.pth"),
    "mobilenetv3_small_100": _torchvision("mobilenet_v3_small-047dcff4.pth",
                                          sha256="047dcff4addef86ea5bc2eff13c9614dc11f47ab1160d0a71a25e7db994f4e1f"),
    "efficientnetv2_s": _torchvision("efficientnet_v2_s-dd5fe13b.pth", "torchvision IMAGENET1K_V1 (trained at 384)"),
    "squeezenet1_0": _torchvision("squeezenet1_0-b66bff10.pth"),
    "squeezenet1_1": WeightSource(
        "https://github.com/rcmalli/keras-squeezenet/releases/download/v1.0/"
        "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5", "keras1_squeezenet_h5",
        sha256="17154246284f555591549ac2c83e127abfbf4307dc4b0060fdaa2931d0fa38da", classes=0,
        note="Caffe SqueezeNet v1.1 converted by rcmalli (no classifier); the sha256 is that of the copy in "
             "../shared/data/weights/squeezenet (from a mirror of the release, DeepCognition/keras-squeezenet)"),
    "mobilenetv3_small_100_tf": WeightSource(
        KERAS_APPS + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float.h5", "keras_applications_h5",
        md5="8768d4c2e7dee89b9d02b2d03d65d862",  # keras.applications' WEIGHTS_HASHES["small_224_1.0_float"][0]
        note="keras.applications MobileNetV3Small (float, 1000 classes); "
        "the TF-slim 8-bit .tflite imports onto the same layout (--pretrained FILE.tflite)"),
}
