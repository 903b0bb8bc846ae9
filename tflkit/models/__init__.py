"""Image classifiers as plain Keras layers. The public surface is list_models / create_model / get_spec."""

from tflkit.models.registry import (  # noqa: F401
    ModelSpec,
    count_params,
    create_model,
    get_spec,
    list_models,
    register_model,
    train_config,
)
