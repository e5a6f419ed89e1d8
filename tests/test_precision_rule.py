"""The TF32 precision rule reproduces what cuDNN was measured to compute (CPU test).

docs/cudnn-rounding-h200.txt is tools/cudnn_rounding.py's output on an H200 (cuDNN 9.19,
torch 2.11): for each shape and pass, which of our arithmetics (rna / trunc / fp32) lands
nearest cuDNN's result.  model_new's rule must predict that class, or the grader's 1e-4 fails.
These tests check the measured rule alone (no GPU: _precision_of_call without a device), which
ModelNew falls back to where cuDNN's heuristics cannot be asked.
"""
import os

import pytest
import torch

from tools.cudnn_rounding import CONFIGS, VARIANTS, pair

M = pytest.importorskip("model_new")
HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "..", "docs", "cudnn-rounding-h200.txt")
PASSES = {"fwd": "forward", "dgrad": "grad_input", "wgrad": "grad_weight"}
# shapes whose measured class the measured rule does not reproduce (documented in the rule); on a
# GPU, ModelNew asks cuDNN's heuristics instead (tests/test_gpu_cudnn_choice.py checks that answer)
KNOWN_MISSES = {("g4", "wgrad"), ("c40-3x3", "wgrad"), ("c256-3x3", "wgrad"), ("c3-11x11-s1", "fwd")}
# small 1x1 layers that cuDNN computes in fp32 (docs/pointwise-classes-h200.md): some on an engine
# without tensor cores, which the query finds; most on its 1x1 engines 58 / 63, which carry the
# tensor-core note and choose FFMA inside (neither the rule nor the query follows that)
KNOWN_MISSES |= {(name, p) for name in ("1x1-c45-k72", "1x1-c3-k16", "1x1-c16-k24", "1x1-c16-k24-p63",
                                       "1x1-c16-k24-pad1") for p in ("fwd", "dgrad")}
KNOWN_MISSES |= {("1x1-c16-k32", "fwd"), ("1x1-c16-k24-big", "fwd")}


def measured():
    """{(config, pass): {variant: relative L2 error vs cuDNN}} from the measured table."""
    table = {}
    names = [name for name, _ in VARIANTS]
    with open(TABLE) as f:
        for line in f:
            cols = line.split()
            if len(cols) > 2 + len(names) and cols[1] in PASSES:
                table[(cols[0], cols[1])] = {n: float(v) for n, v in zip(names, cols[2:2 + len(names)])}
    return table


def predicted(cfg, pass_key):
    name, n, c, k, h, w, ks, st, pd, dl, gr = cfg
    geo = M._Geometry(ks, st, pd, dl, gr, "zeros")
    w_shape = (k, c // gr) + tuple(ks)
    klass = M._precision_of_call(PASSES[pass_key], (n, c, h, w), torch.float32, w_shape, geo)
    return {"tf32-rna": "rna", "tf32-rne": "rne", "tf32-trunc": "trunc", "fp32": "fp32"}[klass]


@pytest.fixture(autouse=True)
def tf32_on(monkeypatch):
    monkeypatch.setattr(M, "_tf32_allowed", lambda: True)


def test_table_covers_every_config():
    table = measured()
    assert len(table) == 3 * len(CONFIGS)
    assert all(len(errs) == len(VARIANTS) for errs in table.values())


@pytest.mark.parametrize("pass_key", sorted(PASSES))
@pytest.mark.parametrize("cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_rule_matches_cudnn(cfg, pass_key):
    """The predicted arithmetic lands as near cuDNN as the best measured one: within 2e-5 (the
    classes rna/rne vs trunc vs fp32 are ~3e-4 apart, rna vs rne within accumulation noise), and
    exactly wherever some variant reproduced cuDNN bitwise."""
    errs = measured()[(cfg[0], pass_key)]
    got = predicted(cfg, pass_key)
    best = min(errs.values())
    ok = errs[got] <= best + 2e-5 and (best > 0 or errs[got] == 0)
    if (cfg[0], pass_key) in KNOWN_MISSES:
        assert not ok, "a known miss now matches: drop it from KNOWN_MISSES"
    else:
        assert ok, f"{cfg[0]} {pass_key}: rule says {got} ({errs[got]:.1e} from cuDNN), measured {errs}"


def test_ieee_mode_is_always_fp32(monkeypatch):
    monkeypatch.setattr(M, "_tf32_allowed", lambda: False)
    for cfg in CONFIGS:
        for pass_key in PASSES:
            assert predicted(cfg, pass_key) == "fp32"
