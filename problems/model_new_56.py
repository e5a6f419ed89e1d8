"""ModelNew from ../model_new.py, serving KernelBench level 1 problem 56.

model_new.py is written for problem 55; this file runs its source unchanged
and swaps in problem 56's inputs (a 5 x 7 kernel on 8 x 64 x 512 x 256), so

    python run_check.py --ref problems/level1_56.py --new problems/model_new_56.py

grades the same kernels on another shape.  run_check.py, like the grader,
exec()s this file's source, so it finds model_new.py through __file__ when
the namespace has one and through the current directory otherwise.
"""

import os

import torch

# run_check.py applies its static rules to this file (relative to this file's
# folder), since the kernels live there and not here.
STATIC_RULES_SOURCE = "../model_new.py"

if "__file__" in globals():
    _MODEL_NEW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model_new.py")
else:
    _MODEL_NEW = os.path.join(os.getcwd(), "model_new.py")
_MODEL_NEW = os.path.normpath(_MODEL_NEW)

with open(_MODEL_NEW) as _f:
    _SOURCE = _f.read()

# model_new.py's code sees its own path as __file__ (it may look for files
# beside itself, now or when it builds lazily).
__file__ = _MODEL_NEW
exec(compile(_SOURCE, _MODEL_NEW, "exec"), globals())

# Problem 56's test inputs replace model_new.py's get_inputs/get_init_inputs.
# The sizes stay local so that no module-level name of model_new.py changes.
def get_inputs():
    return [torch.rand(8, 64, 512, 256)]


def get_init_inputs():
    return [64, 128, (5, 7)]
