"""The activation-arena planner (tflkit/tflite/arena.py): valid plans, close to a brute-force optimum on small
graphs, TFLite's own placement on a hand-checked case, and byte-equal to the arena LiteRT lays out itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tflkit.tflite.arena import (
    FOREVER,
    Buffer,
    align,
    check_plan,
    high_water,
    lifetimes,
    plan,
)


def _brute_force_optimum(buffers) -> int:
    """The smallest high-water mark over every placement order, each buffer at the lowest aligned offset free
    for its lifetime: an optimal plan, compacted downwards, is reached by one of these orders."""
    best = None
    for order in itertools.permutations(buffers):
        placed, offsets = [], {}
        for b in order:
            candidates = sorted({0} | {align(o + p.size) for o, p in placed})
            for c in candidates:
                if all(not (b.first <= p.last and p.first <= b.last) or c + b.size <= o or o + p.size <= c
                       for o, p in placed):
                    break
            offsets[b.tensor] = c
            placed.append((c, b))
        hw = high_water(buffers, offsets)
        best = hw if best is None else min(best, hw)
    return best


def _random_graph(rng, n_nodes):
    """A random DAG of single-output nodes reading one or two earlier tensors (tensor 0 is the graph input)."""
    nodes = []
    for i in range(n_nodes):
        available = list(range(i + 1))
        k = min(len(available), int(rng.integers(1, 3)))
        nodes.append(([int(t) for t in rng.choice(available, size=k, replace=False)], [i + 1]))
    sizes = {t: int(rng.integers(1, 9)) * 64 for t in range(n_nodes + 1)}
    return lifetimes(nodes, [0], {n_nodes}, sizes)


def test_lifetimes_follow_the_arena_planner():
    # 0 -> A -> 1 -> B -> 2 -> C -> 3 (graph output); node C also reads tensor 1 (a skip connection)
    nodes = [([0], [1]), ([1], [2]), ([2, 1], [3])]
    buffers = {b.tensor: b for b in lifetimes(nodes, [0], {3}, {0: 100, 1: 200, 2: 300, 3: 50})}
    assert (buffers[0].first, buffers[0].last) == (0, FOREVER)  # graph inputs live throughout
    assert (buffers[1].first, buffers[1].last) == (0, 2)  # freed at the last node that reads it
    assert (buffers[2].first, buffers[2].last) == (1, 2)
    assert (buffers[3].first, buffers[3].last) == (2, FOREVER)  # graph outputs are never freed


def test_greedy_by_size_places_like_tflite():
    # A chain in -> t1 -> t2 -> t3 -> out: t1 and t3 do not overlap in time, so t3 reuses t1's bytes.
    nodes = [([0], [1]), ([1], [2]), ([2], [3]), ([3], [4])]
    result = plan(lifetimes(nodes, [0], {4}, {0: 64, 1: 1000, 2: 500, 3: 1000, 4: 64}))
    check_plan(result)
    offsets = result.offsets
    assert offsets[0] == 0  # a whole-inference tensor first, at the bottom
    assert offsets[1] == 64 and offsets[3] == 64  # the largest first; t3 fits into t1's place (same size)
    assert offsets[2] == align(64 + 1000)  # overlaps both t1 and t3 in time: above them, 64-byte aligned
    # The output (node 3 on) overlaps the input and t3 (read at node 3), not t2: it goes above t3, where t2 was.
    assert offsets[4] == align(64 + 1000)
    assert result.arena_bytes == align(64 + 1000) + 500 == 1588


def test_plans_are_valid_and_near_the_brute_force_optimum():
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(120):
        buffers = _random_graph(rng, int(rng.integers(3, 6)))
        result = plan(buffers)
        check_plan(result)  # no two buffers alive at the same node share a byte; offsets aligned
        optimum = _brute_force_optimum(buffers)
        assert result.lower_bound <= optimum <= result.arena_bytes
        ratios.append(result.arena_bytes / optimum)
    ratios = np.array(ratios)
    assert np.mean(ratios == 1.0) >= 0.9, ratios  # greedy-by-size is optimal on most small graphs
    assert ratios.max() <= 1.25 and ratios.mean() <= 1.02, (ratios.max(), ratios.mean())


def test_check_plan_catches_an_overlap():
    a, b = Buffer(0, 128, 0, 1), Buffer(1, 128, 1, 2)
    from tflkit.tflite.arena import ArenaPlan

    with pytest.raises(AssertionError, match="overlap"):
        check_plan(ArenaPlan(256, {0: 0, 1: 64}, (a, b), 256))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    pytest.importorskip("tensorflow")
    from converters.convert import convert_saved_model, export_saved_model
    from tflkit.models import create_model

    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    out = {}
    for name, recipes in (("test_resnet", ("fp32", "static_wi8_ai8")), ("test_mobilenetv3", ("static_wi8_ai8",))):
        tmp = tmp_path_factory.mktemp(name)
        saved = export_saved_model(create_model(name), tmp / "saved_model")
        for recipe in recipes:
            path = tmp / f"{name}.{recipe}.tflite"
            path.write_bytes(convert_saved_model(saved, recipe, images))
            out[(name, recipe)] = path
    return out


def test_plan_matches_the_arena_litert_lays_out(converted):
    from tflkit.tflite.arena import arena_plan, runtime_arena_span
    from tflkit.tflite.runtime import load_interpreter

    for (name, recipe), path in converted.items():
        litert = runtime_arena_span(load_interpreter(path, xnnpack=False))
        with_scratch = arena_plan(path, builtin_scratch=True)
        tensors_only = arena_plan(path)
        check_plan(with_scratch)
        check_plan(tensors_only)
        assert abs(with_scratch.arena_bytes - litert) <= 0.1 * litert, (name, recipe, with_scratch.arena_bytes, litert)
        assert tensors_only.arena_bytes <= with_scratch.arena_bytes
        assert tensors_only.arena_bytes >= tensors_only.lower_bound > 0
    fp32 = arena_plan(converted[("test_resnet", "fp32")]).arena_bytes
    int8 = arena_plan(converted[("test_resnet", "static_wi8_ai8")]).arena_bytes
    assert 3.5 <= fp32 / int8 <= 4.5  # int8 activations take a quarter of float32's bytes
