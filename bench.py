#!/usr/bin/env python3
"""Benchmark suite: ModelNew against cuDNN (nn.Conv2d) on a set of shapes, in one run.

    python3 bench.py [--shapes NAME[,NAME...]] [--modes tf32,ieee] [--no-backward]
                     [--no-channels-last] [--trials N | --quick] [--warmup N] [--budget-s S]
                     [--out BENCHMARKS.md] [--png benchmarks.png] [--json PATH]

For every shape (SHAPES in bench.py) and precision mode (tf32: torch's default, cuDNN may use TF32;
ieee: TF32 off) it times cuDNN and ModelNew on an NCHW input, and both again on channels_last
(module and input converted with .to(memory_format=torch.channels_last)), forward and forward +
backward (cold L2, CUDA events: tools/quick_check.py's cold_time), checks ModelNew's forward
output against cuDNN's on each layout (allclose at 1e-4, relative L2), and writes a markdown report
(--out), a PNG bar chart of the speedups (--png, when matplotlib is installed) and optionally the
raw figures (--json).

Shape names: #55 (or 55), #56 (or 56), 5x9, 5x9-pad-dil, strided, grouped, depthwise, 1x1, batch1.
(Quote a name that starts with '#' in the shell: --shapes '#55,#56' or --shapes 55,56.)

Exit status: 0 every row that ran is correct; 1 a correctness FAIL (or a row raised an error);
2 no CUDA GPU (or a usage error, from argparse).
"""

from __future__ import annotations

import argparse
import collections
import copy
import datetime
import gc
import importlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.abspath(__file__))
DEVICE = "cuda"         # the tests run the orchestration on "cpu" with stand-ins for the GPU pieces
_clock = time.monotonic  # and a clock of their own

Shape = collections.namedtuple("Shape", "name cin cout kernel nhw kwargs")

# name, in channels, out channels, kernel, input (N, H, W), nn.Conv2d keyword arguments (bias=False
# unless a shape says otherwise, as KernelBench's Model)
SHAPES = (
    Shape("#55", 64, 128, 3, (8, 512, 1024), {}),
    Shape("#56", 64, 128, (5, 7), (8, 512, 256), {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1)}),
    Shape("5x9", 32, 64, (5, 9), (8, 512, 512), {}),
    Shape("5x9-pad-dil", 32, 64, (5, 9), (8, 512, 512), {"padding": (2, 4), "dilation": (2, 3)}),
    Shape("strided", 64, 128, 3, (8, 512, 512), {"stride": 2, "padding": 1}),
    Shape("grouped", 128, 128, 3, (8, 256, 256), {"groups": 4, "padding": 1}),
    Shape("depthwise", 128, 128, 3, (8, 256, 256), {"groups": 128, "padding": 1}),
    Shape("1x1", 256, 128, 1, (8, 256, 256), {}),
    Shape("batch1", 64, 128, 3, (1, 512, 1024), {}),
)

MODES = ("tf32", "ieee")
FORWARD, FORWARD_BACKWARD = "forward", "forward+backward"
PASS_TITLES = {FORWARD: "forward", FORWARD_BACKWARD: "forward + backward"}
NOT_RUN_BUDGET = "not run (budget)"
TOL = 1e-4  # allclose atol = rtol, both modes (the grader's fp32 rule)
DEFAULT_TRIALS, QUICK_TRIALS, DEFAULT_WARMUP = 20, 5, 3


# ---------------------------------------------------------------------------------------------
# Pure pieces (no torch, no GPU): geometry, arguments, the report.

def _two(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def geometry(shape):
    """(kh, kw), (sh, sw), (ph, pw), (dh, dw), groups, (P, Q) of a Shape."""
    kw = shape.kwargs
    k, s = _two(shape.kernel), _two(kw.get("stride", 1))
    p, d = _two(kw.get("padding", 0)), _two(kw.get("dilation", 1))
    groups = kw.get("groups", 1)
    _, h, w = shape.nhw
    out = tuple((size + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i, size in enumerate((h, w)))
    return k, s, p, d, groups, out


def gflop(shape):
    """Forward GFLOP: 2 * N * K * P * Q * (C / groups) * kh * kw / 1e9."""
    (kh, kw), _, _, _, groups, (p, q) = geometry(shape)
    n = shape.nhw[0]
    return 2.0 * n * shape.cout * p * q * (shape.cin // groups) * kh * kw / 1e9


def describe(shape):
    """One markdown table row (without the GFLOP) describing a shape."""
    k, s, p, d, groups, (oh, ow) = geometry(shape)
    n, h, w = shape.nhw
    bias = shape.kwargs.get("bias", False)
    pair = lambda t: f"{t[0]}x{t[1]}"  # noqa: E731
    return (f"{n}x{shape.cin}x{h}x{w}", str(shape.cout), pair(k), pair(s), pair(p), pair(d), str(groups),
            f"{oh}x{ow}", "yes" if bias else "no")


def _key(name):
    return name.strip().lower().lstrip("#")


SHAPES_BY_KEY = {_key(s.name): s for s in SHAPES}


def _shape_list(text):
    names = []
    for part in text.split(","):
        if not part.strip():
            continue
        shape = SHAPES_BY_KEY.get(_key(part))
        if shape is None:
            raise argparse.ArgumentTypeError(
                f"unknown shape {part.strip()!r}; known: {', '.join(s.name for s in SHAPES)}")
        if shape.name not in names:
            names.append(shape.name)
    if not names:
        raise argparse.ArgumentTypeError("no shape named")
    return names


def _mode_list(text):
    modes = []
    for part in text.split(","):
        mode = part.strip().lower()
        if not mode:
            continue
        if mode not in MODES:
            raise argparse.ArgumentTypeError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        if mode not in modes:
            modes.append(mode)
    if not modes:
        raise argparse.ArgumentTypeError("no mode named")
    return modes


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _nonnegative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser():
    ap = argparse.ArgumentParser(prog="bench.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", type=_shape_list, default=[s.name for s in SHAPES], metavar="NAME[,NAME]",
                    help="subset of the shapes, in this order (default: all, in SHAPES order)")
    ap.add_argument("--modes", type=_mode_list, default=list(MODES), metavar="tf32,ieee",
                    help="precision modes (default: tf32,ieee)")
    ap.add_argument("--no-backward", dest="backward", action="store_false",
                    help="time the forward pass only")
    ap.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                    help="skip the channels_last columns (cuDNN and ModelNew)")
    ap.add_argument("--trials", type=_positive_int, default=None, metavar="N",
                    help=f"timed trials per figure (default {DEFAULT_TRIALS}; {QUICK_TRIALS} with --quick)")
    ap.add_argument("--warmup", type=_nonnegative_int, default=DEFAULT_WARMUP, metavar="N",
                    help=f"untimed calls before the trials (default {DEFAULT_WARMUP})")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_TRIALS} trials (unless --trials is given)")
    ap.add_argument("--budget-s", type=_positive_float, default=None, metavar="S",
                    help="wall-clock budget in seconds, counted from the start (extension build included): "
                         "no new row starts once it is spent; the rows left are marked "
                         f"'{NOT_RUN_BUDGET}'. A row that has started runs to its end.")
    ap.add_argument("--out", default="BENCHMARKS.md", metavar="PATH",
                    help="markdown report (default BENCHMARKS.md; rewritten after every shape)")
    ap.add_argument("--png", default="benchmarks.png", metavar="PATH",
                    help="bar chart of the speedups (default benchmarks.png; skipped without matplotlib; "
                         "--png '' skips it)")
    ap.add_argument("--json", default=None, metavar="PATH", help="raw results as JSON (optional)")
    return ap


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    if args.trials is None:
        args.trials = QUICK_TRIALS if args.quick else DEFAULT_TRIALS
    args.passes = [FORWARD, FORWARD_BACKWARD] if args.backward else [FORWARD]
    return args


def args_line(argv):
    return "python3 bench.py" + ("" if not argv else " " + shlex.join(list(argv)))


def new_row(shape, mode, pass_name):
    """A result row before it runs: status NOT_RUN_BUDGET until run_row fills it in."""
    factor = 3 if pass_name == FORWARD_BACKWARD else 1
    return {"shape": shape.name, "mode": mode, "pass": pass_name, "gflop": factor * gflop(shape),
            "status": NOT_RUN_BUDGET, "cudnn_nchw": None, "cudnn_cl": None, "new": None, "new_cl": None,
            "correct": None, "rel_l2": None, "max_abs": None, "correct_cl": None, "rel_l2_cl": None,
            "seconds": None}


def _ms(stat):
    return "-" if not stat else f"{stat['mean']:.3f} / {stat['median']:.3f}"


def speedup(ref, new):
    """cuDNN mean / ModelNew mean, or None."""
    if not ref or not new or not new["mean"]:
        return None
    return ref["mean"] / new["mean"]


def _x(value):
    return "-" if value is None else f"{value:.2f}x"


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _correct_cell(row):
    """NCHW's verdict (relative L2); channels_last's after it only where its verdict differs (the JSON
    keeps both errors)."""
    if row["correct"] is None:
        return "-"
    text = row["correct"] + ("" if row["rel_l2"] is None else f" ({row['rel_l2']:.1e})")
    cl = row.get("correct_cl")
    if cl is not None and cl != row["correct"]:
        text += f"; channels_last {cl}" + ("" if row.get("rel_l2_cl") is None else f" ({row['rel_l2_cl']:.1e})")
    return text


def _table_row(row):
    gf = f"{row['gflop']:.1f}"
    if row["status"] != "ok":
        return "| " + " | ".join([_cell(row["shape"]), gf, _cell(row["status"])] + ["-"] * 7
                                 + [_correct_cell(row)]) + " |"
    new = row["new"]
    tflops = "-" if not new or not new["mean"] else f"{row['gflop'] / new['mean']:.1f}"
    cells = [row["shape"], gf, _ms(row["cudnn_nchw"]), _ms(row["cudnn_cl"]), _ms(new),
             _x(speedup(row["cudnn_nchw"], new)), _x(speedup(row["cudnn_cl"], new)), _ms(row.get("new_cl")),
             _x(speedup(row["cudnn_cl"], row.get("new_cl"))), tflops, _correct_cell(row)]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


TABLE_HEADER = ("| shape | GFLOP | cuDNN NCHW (ms) | cuDNN channels_last (ms) | ModelNew (ms) | "
                "speedup vs NCHW | speedup vs channels_last | ModelNew channels_last (ms) | "
                "speedup, both channels_last | ModelNew TFLOP/s | correctness |")
TABLE_RULE = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"


def geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def render_markdown(results, env, args_line):
    """The report.  results: {"trials", "warmup", "modes", "passes", "rows"} (rows from new_row,
    filled in); env: gpu, sm_count, memory_gib, driver, torch, cuda, cudnn, python, date, commit,
    build (missing keys print as 'unknown'); args_line: the command line."""
    get = lambda key: "unknown" if env.get(key) in (None, "") else env[key]  # noqa: E731
    rows = results["rows"]
    gpu = get("gpu")
    if env.get("sm_count"):
        gpu += f" ({env['sm_count']} SMs" + (f", {env['memory_gib']} GiB)" if env.get("memory_gib") else ")")
    build = env.get("build") or {}
    lines = [
        "# Benchmarks: ModelNew against cuDNN",
        "",
        f"- GPU: {gpu}",
        f"- driver: {get('driver')}",
        f"- torch: {get('torch')}, CUDA (torch built with): {get('cuda')}, cuDNN: {get('cudnn')}, "
        f"Python: {get('python')}",
        f"- date: {get('date')}",
        f"- commit: {get('commit')}",
    ]
    if build:
        lines.append(f"- extension build: {build.get('seconds', 0):.1f} s"
                     + (" (from the cache)" if build.get("cached") else ""))
    lines += [
        f"- command: `{args_line}`",
        "",
        "## Method",
        "",
        f"Each time is the mean / median in ms of {results['trials']} trials after {results['warmup']} "
        "untimed warm-up calls (`tools/quick_check.py`'s `cold_time`): before every trial a buffer of "
        "twice the L2 size (at least 256 MiB) is written, so the L2 cache is cold, and CUDA events around "
        "one call time it. cuDNN (`nn.Conv2d`, torch's default algorithm choice, `cudnn.benchmark` off) is "
        "timed in the same run, on the same input, with the same weights (both modules built after "
        "`torch.manual_seed(0)`, no bias). cuDNN channels_last: the `nn.Conv2d` module and the input "
        "converted with `.to(memory_format=torch.channels_last)` before timing (the conversion is not "
        "timed). ModelNew (ms) runs on the NCHW input, so 'speedup vs channels_last' compares it with "
        "cuDNN given the layout cuDNN prefers; ModelNew channels_last is ModelNew converted the same way "
        "as cuDNN's channels_last module and input ('speedup, both channels_last': both sides on that "
        "layout). Forward: one call under `torch.no_grad()`. "
        "Forward + backward: `model(x).backward(g)` with a fixed random `g`, the input and the weight "
        "requiring grad (gradients set to None before each trial, so no accumulation is timed).",
        "",
        "GFLOP = 2 N K P Q (C / groups) kh kw / 1e9 for the forward pass; forward + backward counts "
        "3 times that (grad-input and grad-weight each cost one forward). Speedup = cuDNN mean / "
        "ModelNew mean; ModelNew TFLOP/s = GFLOP / ModelNew mean. Modes: **tf32** = torch's default "
        "(cuDNN may run fp32 convolutions in TF32), **ieee** = TF32 off (`tools/quick_check.py`'s "
        "`set_tf32(False)`); ModelNew follows the same flags. Correctness: ModelNew's forward output "
        "against cuDNN's NCHW output in the same mode, `torch.allclose(atol=1e-4, rtol=1e-4)` -> ok / "
        "FAIL, relative L2 error in parentheses (ModelNew's channels_last output is checked the same way "
        "against cuDNN's channels_last output, whose arithmetic may differ from its NCHW one, and named "
        "only where its verdict differs; a result in another layout than cuDNN's, i.e. other strides, "
        "is a FAIL); the forward + backward tables repeat that "
        "forward check "
        "(gradients are compared by `run_check.py --backward` and the GPU tests).",
        "",
        "## Shapes",
        "",
        "| shape | input NxCxHxW | out channels | kernel | stride | padding | dilation | groups | output | bias "
        "| forward GFLOP |",
        "| --- | --- | ---: | --- | --- | --- | --- | ---: | --- | --- | ---: |",
    ]
    seen = []
    for row in rows:
        if row["shape"] not in seen:
            seen.append(row["shape"])
    by_name = {s.name: s for s in SHAPES}
    for name in seen:
        shape = by_name.get(name)
        if shape is not None:
            lines.append("| " + " | ".join((name,) + describe(shape) + (f"{gflop(shape):.1f}",)) + " |")
    for mode in results["modes"]:
        for pass_name in results["passes"]:
            table = [r for r in rows if r["mode"] == mode and r["pass"] == pass_name]
            if not table:
                continue
            lines += ["", f"## {mode}, {PASS_TITLES[pass_name]}", "", TABLE_HEADER, TABLE_RULE]
            lines += [_table_row(r) for r in table]
            ran = [r for r in table if r["status"] == "ok"]
            g_nchw = geomean([speedup(r["cudnn_nchw"], r["new"]) for r in ran])
            g_cl = geomean([speedup(r["cudnn_cl"], r["new"]) for r in ran])
            g_both = geomean([speedup(r["cudnn_cl"], r.get("new_cl")) for r in ran])
            if g_nchw is not None:
                plural = "s" if len(ran) != 1 else ""
                lines += ["", f"Geometric mean speedup over {len(ran)} shape{plural}: {_x(g_nchw)} vs NCHW"
                          + (f", {_x(g_cl)} vs channels_last" if g_cl is not None else "")
                          + (f", {_x(g_both)} both on channels_last" if g_both is not None else "") + "."]
    return "\n".join(lines) + "\n"


def write_png(results, path):
    """Grouped bar chart of the speedup vs cuDNN NCHW per shape, one bar per mode and pass.
    Returns a message saying what happened (no exception when matplotlib is missing)."""
    try:
        import matplotlib
    except ImportError:
        return f"matplotlib is not installed: no chart ({path} not written)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    shapes = []
    for row in rows:
        if row["shape"] not in shapes:
            shapes.append(row["shape"])
    series = [(m, p) for m in results["modes"] for p in results["passes"]
              if any(r["mode"] == m and r["pass"] == p for r in rows)]
    values = {}
    for row in rows:
        value = speedup(row["cudnn_nchw"], row["new"]) if row["status"] == "ok" else None
        values[(row["mode"], row["pass"], row["shape"])] = value
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(shapes) + 2), 4.5))
    for i, (mode, pass_name) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(shapes))]
        ys = [values.get((mode, pass_name, s)) or 0.0 for s in shapes]
        bars = ax.bar(xs, ys, width, label=f"{mode}, {PASS_TITLES[pass_name]}")
        for bar, y in zip(bars, ys):
            if y:
                ax.annotate(f"{y:.2f}", (bar.get_x() + bar.get_width() / 2, y), ha="center", va="bottom",
                            fontsize=6, rotation=90, xytext=(0, 2), textcoords="offset points")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(shapes)))
    ax.set_xticklabels(shapes, rotation=30, ha="right")
    ax.set_ylabel("speedup vs cuDNN NCHW (mean)")
    ax.set_title("ModelNew vs cuDNN (higher is better; 0 = not run)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"wrote {path}"


def error_text(error):
    """'error: Type: first line of the message' (at most 160 characters of it) for a table cell."""
    first = (str(error).splitlines() or [""])[0]
    return f"error: {type(error).__name__}: {first[:160]}"


def exit_status(results):
    """1 when a row that ran is not correct (FAIL or error), else 0."""
    bad = [r for r in results["rows"] if "FAIL" in (r["correct"], r.get("correct_cl"))
           or r["status"].startswith("error")]
    return 1 if bad else 0


# ---------------------------------------------------------------------------------------------
# The GPU part.

def _git_commit():
    git = shutil.which("git")
    if not git:
        return None
    out = subprocess.run([git, "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    dirty = subprocess.run([git, "-C", REPO, "status", "--porcelain", "--", "model_new.py"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + (" (model_new.py modified)" if dirty else "")


def _write_outputs(args, results, env, line):
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(render_markdown(results, env, line))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"env": env, "command": line, "results": results}, f, indent=1, default=str)


class Bench:
    """Times one shape after another; rows are filled in place."""

    def __init__(self, args, torch, qc, deadline):
        self.args, self.torch, self.qc, self.deadline = args, torch, qc, deadline

    def budget_left(self):
        return self.deadline is None or _clock() < self.deadline

    def cold_time(self, fn):
        mean, median = self.qc.cold_time(fn, self.args.trials, self.args.warmup)
        return {"mean": mean, "median": median}

    def time_forward(self, model, x):
        with self.torch.no_grad():
            return self.cold_time(lambda: model(x))

    def time_forward_backward(self, model, x, g):
        params = list(model.parameters())

        def run():
            x.grad = None
            for p in params:
                p.grad = None
            model(x).backward(g)
        return self.cold_time(run)

    def correctness(self, ref, new, x):
        torch = self.torch
        with torch.no_grad():
            yr = ref(x)
            yn = new(x)
            # (the layout too: a channels_last input gives channels_last outputs on both sides)
            if yn.shape != yr.shape or yn.stride() != yr.stride():
                return {"correct": "FAIL", "rel_l2": None, "max_abs": None}
            ok = bool(torch.allclose(yn, yr, atol=TOL, rtol=TOL))
            result = {"correct": "ok" if ok else "FAIL", "rel_l2": self.qc.rel_l2(yn, yr),
                      "max_abs": (yn - yr).abs().max().item()}
        del yr, yn
        return result

    def run_shape(self, shape, rows):
        """rows: {(mode, pass): row} of this shape, in run order."""
        torch, args = self.torch, self.args
        cl = torch.channels_last
        n, h, w = shape.nhw
        self.qc.set_tf32(True)
        ref, new = self.qc.pair_models(shape.cin, shape.cout, shape.kernel, **dict(shape.kwargs))
        ref_cl = copy.deepcopy(ref).to(memory_format=cl) if args.channels_last else None
        new_cl = copy.deepcopy(new).to(memory_format=cl) if args.channels_last else None
        torch.manual_seed(1)
        x = torch.rand(n, shape.cin, h, w, device=DEVICE)
        x_cl = x.contiguous(memory_format=cl) if args.channels_last else None
        g = g_cl = None
        checked = {}
        for (mode, pass_name), row in rows.items():
            if not self.budget_left():
                print(f"  {shape.name} {mode} {pass_name}: {NOT_RUN_BUDGET}", flush=True)
                continue
            t0 = _clock()
            self.qc.set_tf32(mode == "tf32")
            try:
                if mode not in checked:
                    checked[mode] = self.correctness(ref, new, x)
                    if new_cl is not None:
                        # (against cuDNN on the same layout: its arithmetic class may differ by layout)
                        verdict = self.correctness(ref_cl, new_cl, x_cl)
                        checked[mode].update(correct_cl=verdict["correct"], rel_l2_cl=verdict["rel_l2"])
                row.update(checked[mode])
                if pass_name == FORWARD:
                    row["cudnn_nchw"] = self.time_forward(ref, x)
                    row["cudnn_cl"] = self.time_forward(ref_cl, x_cl) if ref_cl is not None else None
                    row["new"] = self.time_forward(new, x)
                    row["new_cl"] = self.time_forward(new_cl, x_cl) if new_cl is not None else None
                else:
                    if g is None:
                        torch.manual_seed(2)
                        g = torch.randn((n, shape.cout) + geometry(shape)[5], device=DEVICE)
                        g_cl = g.contiguous(memory_format=cl) if args.channels_last else None
                        x.requires_grad_(True)
                        if x_cl is not None:
                            x_cl.requires_grad_(True)
                    row["cudnn_nchw"] = self.time_forward_backward(ref, x, g)
                    row["cudnn_cl"] = self.time_forward_backward(ref_cl, x_cl, g_cl) if ref_cl is not None else None
                    row["new"] = self.time_forward_backward(new, x, g)
                    row["new_cl"] = self.time_forward_backward(new_cl, x_cl, g_cl) if new_cl is not None else None
                row["status"] = "ok"
            except Exception as error:  # noqa: BLE001 - reported in the row; the next row runs
                row["status"] = error_text(error)
                print(f"  {shape.name} {mode} {pass_name}: {row['status']}", flush=True)
            row["seconds"] = round(_clock() - t0, 2)
            for param in list(ref.parameters()) + list(new.parameters()) + (
                    list(ref_cl.parameters()) + list(new_cl.parameters()) if ref_cl is not None else []):
                param.grad = None
            x.grad = None
            if x_cl is not None:
                x_cl.grad = None
            if row["status"] == "ok":
                print(f"  {shape.name:12s} {mode:4s} {pass_name:16s} cuDNN NCHW {_ms(row['cudnn_nchw'])}  "
                      f"channels_last {_ms(row['cudnn_cl'])}  ModelNew {_ms(row['new'])}, channels_last "
                      f"{_ms(row['new_cl'])} ms  speedup {_x(speedup(row['cudnn_nchw'], row['new']))} / "
                      f"{_x(speedup(row['cudnn_cl'], row['new']))} / {_x(speedup(row['cudnn_cl'], row['new_cl']))}  "
                      f"{_correct_cell(row)}  "
                      f"[{row['seconds']:.1f} s]", flush=True)
        self.qc.set_tf32(True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    line = args_line(argv)
    start = _clock()
    deadline = None if args.budget_s is None else start + args.budget_s

    import torch

    if not torch.cuda.is_available():
        print("bench.py: no CUDA GPU is visible (torch.cuda.is_available() is False); "
              "the benchmark needs one. Nothing was run or written.", flush=True)
        return 2
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    M = importlib.import_module("model_new")  # builds nothing: build_extension() below does
    qc = importlib.import_module("tools.quick_check")  # cold_time, pair_models, rel_l2, set_tf32
    environment = importlib.import_module("run_check").environment

    print("building / loading the extension ...", flush=True)
    build = M.build_extension()
    print(f"  {build}", flush=True)
    env = environment(torch)
    env.update({
        "driver": env.get("driver") or "unknown",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(),
        "build": build,
    })
    by_name = {s.name: s for s in SHAPES}
    shapes = [by_name[name] for name in args.shapes]
    results = {"trials": args.trials, "warmup": args.warmup, "modes": args.modes, "passes": args.passes,
               "rows": []}
    plan = []
    for shape in shapes:
        rows = {(m, p): new_row(shape, m, p) for m in args.modes for p in args.passes}
        results["rows"].extend(rows.values())
        plan.append((shape, rows))
    # Tables list rows by mode and pass; runs go shape by shape (one set of tensors per shape).
    results["rows"].sort(key=lambda r: (args.modes.index(r["mode"]), args.passes.index(r["pass"])))

    bench = Bench(args, torch, qc, deadline)
    print(f"{len(shapes)} shapes x modes {','.join(args.modes)} x {', '.join(args.passes)}; "
          f"{args.trials} trials, {args.warmup} warm-up"
          + (f"; budget {args.budget_s:g} s" if args.budget_s else ""), flush=True)
    for shape, rows in plan:
        if not bench.budget_left():
            print(f"{shape.name}: {NOT_RUN_BUDGET}", flush=True)
            continue
        print(f"{shape.name}: {shape.nhw[0]}x{shape.cin}x{shape.nhw[1]}x{shape.nhw[2]} -> {shape.cout}, "
              f"kernel {shape.kernel}, {shape.kwargs or 'defaults'}  (t+{_clock() - start:.0f} s)",
              flush=True)
        try:
            bench.run_shape(shape, rows)
        except Exception as error:  # noqa: BLE001 - setup failed (e.g. out of memory): report, go on
            for row in rows.values():
                if row["status"] == NOT_RUN_BUDGET:
                    row["status"] = error_text(error)
            print(f"  {shape.name}: setup failed: {type(error).__name__}: {error}", flush=True)
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        _write_outputs(args, results, env, line)

    _write_outputs(args, results, env, line)
    print(f"wrote {args.out}" + (f" and {args.json}" if args.json else ""), flush=True)
    if args.png:
        print(write_png(results, args.png), flush=True)
    status = exit_status(results)
    skipped = sum(r["status"] == NOT_RUN_BUDGET for r in results["rows"])
    print(f"done in {_clock() - start:.0f} s: {len(results['rows']) - skipped} rows run, "
          f"{skipped} not run (budget); exit {status}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
