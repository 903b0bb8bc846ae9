"""BatchNorm population statistics recomputed from training images ("precise BN", Wu & Johnson 2021, as in pycls
and detectron2) before every validation and every saved model.

Why: a BatchNorm's moving averages (momentum 0.99: about 100 steps of memory) lag weights that still move fast, so
a short run is validated, saved and converted with statistics of earlier weights. How much that costs depends on
the CPU's kernels: the demo (93 steps an epoch, lr 3e-3) reached 86.35% on an AVX2 CPU and 78.00% on an AMX one,
with validation at chance for two epochs (STACK.md, 2026-12-02). Statistics recomputed at the current weights make
the result a function of the weights alone, whatever the momentum, the run length or the CPU.

What: the run's first `batches` training batches (unshuffled order of epoch 0, no augmentation: the images as
deployment sees them) go through the model in training mode; each trainable BatchNorm's moving mean and variance
become the pooled mean and variance of its input over those images (the exact population figures of
batches x batch_size x H x W values, not an average of per-batch variances). Frozen BatchNorms (a pretrained
backbone's, in inference mode) keep theirs.
"""
from __future__ import annotations

import numpy as np

# Enough images for per-channel statistics to settle (pycls uses 1,024 by default; batch 64 x 16 = 1,024) at a
# cost of about 16 forward passes: 5% of the demo's 93-step epoch (benchmarks/demo_seeds.py states the wall time).
DEFAULT_BATCHES = 16


def trainable_batchnorms(model) -> list:
    import keras

    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


class BatchNormStats:
    """Recomputes a model's BatchNorm statistics; one traced forward pass, reused while the model's trainable set
    stays the same (a new phase of a run builds a new one)."""

    def __init__(self, model, dataset, batches: int = DEFAULT_BATCHES):
        import keras
        import tensorflow as tf

        self.model, self.dataset, self.batches = model, dataset, batches
        self.layers = trainable_batchnorms(model)
        self._probe = None
        if not self.layers:
            return
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # called with one tensor
        probe = keras.Model(inputs, [layer.input for layer in self.layers])

        @tf.function(reduce_retracing=True)
        def moments(images):
            outputs = probe(images, training=True)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            result = []
            for tensor in outputs:
                result.append(tf.nn.moments(tf.cast(tensor, tf.float32), list(range(len(tensor.shape) - 1))))
            return result

        self._probe = moments

    def update(self) -> int:
        """Set the statistics; returns the number of images they were computed from (0: nothing to do)."""
        if self._probe is None:
            return 0
        # Keep the moving values: the probe runs the layers in training mode, which also steps their averages.
        sums = [[np.zeros(layer.moving_mean.shape, np.float64) for _ in range(2)] for layer in self.layers]
        images = 0
        for batch in self.dataset.take(self.batches):
            x = batch[0] if isinstance(batch, tuple) else batch
            for total, (mean, variance) in zip(sums, self._probe(x)):
                mean = mean.numpy().astype(np.float64)
                total[0] += mean * len(x)
                total[1] += (variance.numpy() + mean * mean) * len(x)  # E[x^2] of the batch, pooled in float64
            images += len(x)
        if not images:
            return 0
        for layer, (mean_sum, square_sum) in zip(self.layers, sums):
            mean = mean_sum / images
            variance = np.maximum(square_sum / images - mean * mean, 0.0)
            layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
            layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
        return images
