"""The study: every model x dataset x regime x recipe, trained, converted, evaluated and benchmarked, resumably.

`spec` (the study file), `store` (study.db), `stages` and `worker` (one cell, in its own process), `executors`
(local processes or Ray), `runner` (the driver), `rows` (study.db flattened), `report`, `claims`, `pick`.
"""
