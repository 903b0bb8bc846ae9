"""Learning-rate schedules: constant, step decay, cosine; each with an optional linear warm-up.

A Keras `LearningRateSchedule` of the optimizer's step counter, registered as serializable: it is saved inside
last.keras with the optimizer, so a resumed run continues the same curve from the restored step.
"""

from __future__ import annotations

import math

import keras
from keras import ops

SCHEDULES = ("constant", "step", "cosine")


@keras.saving.register_keras_serializable(package="tflkit")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`kind` over `total_steps`, after `warmup_steps` of linear ramp from lr/warmup_steps to lr.

    step: multiply by `gamma` every `step_size` steps. cosine: from lr down to `min_ratio * lr` at total_steps.
    """

    def __init__(self, kind: str, lr: float, total_steps: int, warmup_steps: int = 0, step_size: int = 1,
                 gamma: float = 0.1, min_ratio: float = 0.0):
        self.kind, self.lr, self.total_steps, self.warmup_steps = kind, float(lr), int(total_steps), int(warmup_steps)
        self.step_size, self.gamma, self.min_ratio = max(1, int(step_size)), float(gamma), float(min_ratio)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        after = ops.maximum(step - self.warmup_steps, 0.0)
        if self.kind == "step":
            rate = self.lr * ops.power(self.gamma, ops.floor(after / self.step_size))
        elif self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = ops.minimum(after / span, 1.0)
            rate = self.lr * (self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + ops.cos(math.pi * progress)))
        else:
            rate = ops.convert_to_tensor(self.lr, "float32")
        if self.warmup_steps:
            rate = ops.where(step < self.warmup_steps, self.lr * (step + 1) / self.warmup_steps, rate)
        return rate

    def get_config(self):
        return dict(kind=self.kind, lr=self.lr, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                    step_size=self.step_size, gamma=self.gamma, min_ratio=self.min_ratio)
