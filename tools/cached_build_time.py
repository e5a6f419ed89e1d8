#!/usr/bin/env python3
"""Time a cached build in fresh processes: `import torch`, `import model_new`, build_extension()
(which finds the library of an earlier build) and the first forward of a small convolution.

    python3 tools/cached_build_time.py [--runs 3]

Each run is a new Python process, once with the direct import of the cached library (the default)
and once through load_inline's own check (KB_CONV_FAST_LOAD=0).  Build the extension first (any
use of model_new does); a run whose build_extension() reports cached=False is marked.
"""
import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
sys.path.insert(0, os.getcwd())
import model_new as M
t2 = time.perf_counter()
info = M.build_extension()
t3 = time.perf_counter()
x = torch.rand(1, 8, 16, 16, device="cuda")
m = M.ModelNew(8, 8, 3).cuda()
m(x)
torch.cuda.synchronize()
t4 = time.perf_counter()
print(json.dumps({"import_torch": t1 - t0, "import_model_new": t2 - t1, "build_extension": t3 - t2,
                  "first_forward": t4 - t3, "cached": info["cached"], "direct": info.get("direct_import")}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for label, fast in (("direct import", "1"), ("load_inline", "0")):
        for _ in range(args.runs):
            env = dict(os.environ, KB_CONV_FAST_LOAD=fast)
            out = subprocess.run([sys.executable, "-c", CHILD], cwd=root, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{label}: child failed:\n{out.stderr[-2000:]}")
                return 1
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{label:14s} import torch {r['import_torch']:.2f} s  import model_new {r['import_model_new']:.2f} s  "
                  f"build_extension {r['build_extension']:.2f} s (cached={r['cached']}, direct={r['direct']})  "
                  f"first forward {r['first_forward']:.2f} s  total {sum(r[k] for k in r if isinstance(r[k], float)):.2f} s",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
