#!/usr/bin/env python3
"""Grade model_new.py against reference_model.py the way a KernelBench-style
grader does, and report more than the grader would.

Steps, in order:
  1. static rules on the ModelNew source (static_rules.py);
  2. load both files by exec()ing their source, as the grader does, and build
     ModelNew's extension (its build_extension(), or else the first forward);
  3. correctness: the grader's seeding and 5 trials, judged at the current
     rule (atol = rtol = 1e-4 for fp32) and the old one (1e-2);
  4. optionally the backward pass (--backward);
  5. timing: CUDA events around one call after an L2 flush, as the grader.

Exit codes (the first that applies, in this order):
  5  bad usage (unknown flag, missing file)
  4  no CUDA GPU (and --static-only not given)
  3  import, build or construction failure
  2  static rule errors (the grader would reject the file)
  1  a correctness, backward or timing check failed
  0  every requested check passed

The pieces that need no GPU (tolerances, seeds, statistics, the loader) are
plain functions that the tests import.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import static_rules

REPO = Path(__file__).resolve().parent

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_STATIC = 2
EXIT_BUILD = 3
EXIT_NO_GPU = 4
EXIT_USAGE = 5

NO_GPU_MESSAGE = (
    "run_check.py: a CUDA GPU is needed for build, correctness and timing "
    "(use --static-only on this machine)"
)

# The grader's constants.
GRADER_SEED = 42
CORRECTNESS_TRIALS = 5
WARMUP_RUNS = 3
DEFAULT_TIMING_TRIALS = 100
CURRENT_RULE_TOL = 1e-4  # atol = rtol, fp32
OLD_RULE_TOL = 1e-2  # atol = rtol, the earlier grader; also the fp16/bf16 rule
FALLBACK_L2_BYTES = 256 * 2**20  # when torch does not report the L2 size

PRECISIONS = ("fp32", "fp16", "bf16")
STATIC_FINDINGS_SHOWN = 8  # in a full run; --static-only shows all


# ---------------------------------------------------------------------------
# Reusable pieces: no GPU needed.


def tolerances(precision: str) -> Dict[str, float]:
    """atol (= rtol) of the current and the old grading rule for a precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    if precision == "fp32":
        return {"current": CURRENT_RULE_TOL, "old": OLD_RULE_TOL}
    # Half precision cannot meet 1e-4; both rules use 1e-2 there.
    return {"current": OLD_RULE_TOL, "old": OLD_RULE_TOL}


def pass_tolerance(precision: str) -> float:
    """The tolerance that decides pass/fail in this mode."""
    return tolerances(precision)["current"]


def backward_threshold(precision: str, tf32: bool) -> float:
    """Largest relative L2 error of a gradient that still passes."""
    if precision != "fp32":
        return 1e-2
    return 1e-4 if tf32 else 1e-5


def trial_seeds(seed: int = GRADER_SEED, count: int = CORRECTNESS_TRIALS) -> List[int]:
    """The per-trial seeds: drawn from a generator seeded with the grader's seed."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2**31 - 1, (count,), generator=generator).tolist()


def summarize(times_ms: Sequence[float]) -> Dict[str, float]:
    """mean, std (population, as numpy's default), min, max, median of the trials."""
    if not times_ms:
        raise ValueError("no timings to summarize")
    values = [float(t) for t in times_ms]
    return {
        "mean": statistics.fmean(values),
        "std": statistics.pstdev(values),
        "min": min(values),
        "max": max(values),
        "median": statistics.median(values),
        "trials": len(values),
    }


def speedup(reference_stats: Dict[str, float], new_stats: Dict[str, float]) -> float:
    """reference mean / ModelNew mean: above 1 means ModelNew is faster."""
    return reference_stats["mean"] / new_stats["mean"]


def load_source(path, name: Optional[str] = None) -> Dict[str, Any]:
    """exec() a file's source into a fresh namespace, as the grader does.

    __file__ and __name__ are set so that a file can find its neighbours; the
    name is the file's stem, never "__main__", so no script block runs."""
    path = Path(path)
    text = path.read_text()
    namespace: Dict[str, Any] = {"__file__": str(path.resolve()), "__name__": name or path.stem}
    exec(compile(text, str(path), "exec"), namespace)
    return namespace


def static_source_of(path) -> Optional[Path]:
    """A wrapper (such as problems/model_new_56.py) names the file that holds
    its kernels in a top-level STATIC_RULES_SOURCE = "<path>" (relative to the
    wrapper); the static rules then read that file.  Found without running it."""
    path = Path(path)
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "STATIC_RULES_SOURCE" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return (path.parent / node.value.value).resolve()
    return None


def run_static(path) -> List[Tuple[str, static_rules.Finding]]:
    """Static findings as (file shown, finding) for the ModelNew file."""
    path = Path(path)
    results = []
    kernel_source = None
    try:
        kernel_source = static_source_of(path)
    except SyntaxError:
        kernel_source = None  # the rules still read it as text
    if kernel_source is not None:
        results += [(kernel_source.name, f) for f in static_rules.check_source(kernel_source.read_text())]
        # The wrapper itself must follow the line rules, but it holds no kernels.
        wrapper = [f for f in static_rules.check_source(path.read_text()) if f.line > 0]
        results += [(path.name, f) for f in wrapper]
    else:
        results += [(path.name, f) for f in static_rules.check_source(path.read_text())]
    return results


def cudnn_conv_uses_tf32(torch) -> bool:
    """Whether cuDNN may run fp32 convolutions in TF32 under torch's flags.

    torch >= 2.9 keeps the setting as fp32_precision on cudnn.conv, which may
    say "none" (inherit from cudnn, then from the generic backend); reading
    the legacy allow_tf32 can raise once the new API has been used."""
    cudnn = torch.backends.cudnn
    conv = getattr(cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        for level in (conv, cudnn, torch.backends):
            value = getattr(level, "fp32_precision", "none")
            if value != "none":
                return value == "tf32"
        return False
    return bool(cudnn.allow_tf32)


def set_ieee(torch) -> None:
    """--ieee: no TF32 in the reference's convolutions (old and new API)."""
    torch.backends.cudnn.allow_tf32 = False
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = "ieee"


def reference_mode(precision: str, tf32: bool, ieee_flag: bool) -> str:
    if precision != "fp32":
        return f"{precision} (models and inputs cast)"
    if tf32:
        return "fp32 inputs, cuDNN in TF32 (torch default)"
    return "IEEE fp32" + (" (--ieee)" if ieee_flag else " (TF32 off in torch's flags)")


def flush_bytes(props) -> int:
    """Size of the L2-flush buffer: twice the L2 cache."""
    l2 = getattr(props, "L2_cache_size", None) or FALLBACK_L2_BYTES
    return 2 * int(l2)


def relative_l2(a, b) -> float:
    """||a - b|| / ||b||, computed in float64."""
    a, b = a.double(), b.double()
    denominator = b.norm().item()
    numerator = (a - b).norm().item()
    if denominator == 0.0:
        return 0.0 if numerator == 0.0 else math.inf
    return numerator / denominator


def short_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:300]


def error_details(error: BaseException, limit: int = 12) -> List[str]:
    """The lines worth showing from a long message, such as the compiler output
    that torch puts in a failed build's RuntimeError."""
    lines = [line.rstrip() for line in str(error).splitlines()[1:] if line.strip()]
    picked = [line for line in lines if "error" in line.lower()] or lines[-limit:]
    return [line[:160] for line in picked[:limit]]


class Progress:
    """One status line on stderr, rewritten in place.  Only on a terminal:
    in a log file carriage returns would only add noise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.enabled = hasattr(stream, "isatty") and stream.isatty()
        self._lock = threading.Lock()

    def update(self, text: str) -> None:
        if self.enabled:
            with self._lock:
                self.stream.write("\r\x1b[K" + text)
                self.stream.flush()

    def clear(self) -> None:
        self.update("")

    @contextmanager
    def ticking(self, text: str):
        """Show `text ... N s` while the body runs (e.g. a minute-long build)."""
        stop = threading.Event()
        start = time.perf_counter()

        def tick():
            while not stop.wait(0.5):
                self.update(f"{text} ... {time.perf_counter() - start:.0f} s")

        thread = threading.Thread(target=tick, daemon=True)
        if self.enabled:
            self.update(f"{text} ...")
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if self.enabled:
                thread.join()
            self.clear()


class _Parser(argparse.ArgumentParser):
    # argparse exits with 2 on bad usage; 2 means static errors here.
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="run_check.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Grade ModelNew against the reference like a KernelBench grader: static rules,\n"
        "build, correctness (5 seeded trials, atol=rtol=1e-4 now, 1e-2 before), optional\n"
        "backward, and CUDA-event timing with an L2 flush before each trial.",
        epilog="exit codes:\n"
        "  0  all requested checks pass\n"
        "  1  a correctness, backward or timing check failed\n"
        "  2  static rule errors\n"
        "  3  import, build or construction failure\n"
        "  4  no CUDA GPU (use --static-only)\n"
        "  5  bad usage",
    )
    parser.add_argument("--ref", default=str(REPO / "reference_model.py"),
                        help="reference problem file (default: reference_model.py beside this script)")
    parser.add_argument("--new", default=str(REPO / "model_new.py"),
                        help="file defining ModelNew (default: model_new.py beside this script)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp16/bf16 cast both models and inputs; tolerance 1e-2 (default fp32)")
    parser.add_argument("--ieee", action="store_true",
                        help="turn TF32 off for cuDNN so the reference is IEEE fp32 "
                        "(default: leave torch's flags alone)")
    parser.add_argument("--backward", action="store_true",
                        help="also compare input/weight/bias gradients and time forward+backward")
    parser.add_argument("--trials", type=_positive_int, default=DEFAULT_TIMING_TRIALS,
                        help=f"timing trials per model (default {DEFAULT_TIMING_TRIALS}, after {WARMUP_RUNS} warm-ups)")
    parser.add_argument("--no-timing", action="store_true", help="skip timing")
    parser.add_argument("--static-only", action="store_true",
                        help="only the static rules (no GPU or CUDA torch needed)")
    parser.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    return parser


# ---------------------------------------------------------------------------
# GPU steps.


def _to_device(values, torch, dtype=None):
    out = []
    for value in values:
        if isinstance(value, torch.Tensor):
            value = value.cuda()
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
        out.append(value)
    return out


def compare_parameters(reference, new) -> Dict[str, Any]:
    """Whether ModelNew starts from the reference's weights (same seed, same
    init): matched by parameter name, as the grader never copies weights."""
    import torch

    new_params = dict(new.named_parameters())
    report = {"equal": [], "different": [], "missing": []}
    for name, p in reference.named_parameters():
        q = new_params.get(name)
        if q is None or q.shape != p.shape:
            report["missing"].append(name)
        elif torch.equal(p.detach().cpu(), q.detach().cpu()):
            report["equal"].append(name)
        else:
            report["different"].append(name)
    return report


def correctness_step(reference, new, get_inputs, precision, dtype, progress) -> Dict[str, Any]:
    import torch

    tols = tolerances(precision)
    result = {"tolerances": tols, "pass_tolerance": tols["current"], "trials": [], "error": None}
    for index, seed in enumerate(trial_seeds()):
        progress.update(f"correctness trial {index + 1}/{CORRECTNESS_TRIALS}")
        trial: Dict[str, Any] = {"seed": seed}
        result["trials"].append(trial)
        torch.manual_seed(seed)
        inputs = _to_device(get_inputs(), torch, dtype)
        with torch.no_grad():
            out_ref = reference(*inputs)
            torch.cuda.synchronize()
            try:
                out_new = new(*inputs)
                torch.cuda.synchronize()
            except Exception as error:  # a crash fails the trial; the context may be gone
                trial.update(passed=False, error=short_error(error))
                result["error"] = trial["error"]
                break
        same_kind = isinstance(out_new, torch.Tensor) and out_new.dtype == out_ref.dtype
        if not same_kind or out_new.shape != out_ref.shape:
            got = (f"{tuple(out_new.shape)} {out_new.dtype}" if isinstance(out_new, torch.Tensor)
                   else type(out_new).__name__)
            trial.update(passed=False, error=f"output {got} != reference {tuple(out_ref.shape)} {out_ref.dtype}")
            continue
        diff = (out_new.float() - out_ref.float()).abs()
        tol = tols["current"]
        # max of |diff| / (atol + rtol |ref|): above 1 fails allclose at the current rule
        worst = (diff / (tol + tol * out_ref.float().abs())).max().item()
        trial.update(
            max_abs_diff=diff.max().item(),
            mean_abs_diff=diff.mean().item(),
            worst_over_tol=worst,
            allclose_current=torch.allclose(out_new, out_ref, atol=tols["current"], rtol=tols["current"]),
            allclose_old=torch.allclose(out_new, out_ref, atol=tols["old"], rtol=tols["old"]),
        )
        trial["passed"] = trial["allclose_current"]
        del out_ref, out_new, diff, inputs
    progress.clear()
    result["passed_trials"] = sum(1 for t in result["trials"] if t.get("passed"))
    result["passed_old_rule"] = sum(1 for t in result["trials"] if t.get("allclose_old"))
    result["pass"] = result["passed_trials"] == CORRECTNESS_TRIALS
    return result


def timed_trial(fn: Callable[[], Any], flush_buf, before: Optional[Callable[[], None]] = None,
                gap: Optional[Callable[[], None]] = None) -> float:
    """One of the grader's trials, in ms: `before` (untimed), synchronize, flush L2, event, one
    call, event, synchronize.  `gap` runs between the flush and the start event (tools/idle_probe.py
    queues a GPU sleep there); the grader has none."""
    import torch

    if before:
        before()
    torch.cuda.synchronize()
    flush_buf.zero_()  # evicts the L2 cache, queued before the start event
    if gap:
        gap()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end)


def time_cuda(fn: Callable[[], Any], trials: int, flush_buf, progress, label: str,
              before: Optional[Callable[[], None]] = None) -> List[float]:
    """The grader's timing: WARMUP_RUNS calls, then `trials` of timed_trial.  `before` runs
    outside the timed region."""
    import torch

    for _ in range(WARMUP_RUNS):
        if before:
            before()
        fn()
    torch.cuda.synchronize()
    times = []
    for index in range(trials):
        times.append(timed_trial(fn, flush_buf, before))
        progress.update(f"timing {label} {index + 1}/{trials}")
    progress.clear()
    return times


def timing_step(reference, new, get_inputs, dtype, trials, flush_buf, progress) -> Dict[str, Any]:
    import torch

    torch.manual_seed(GRADER_SEED)
    inputs = _to_device(get_inputs(), torch, dtype)
    result = {"order": "reference block, then ModelNew block", "warmup": WARMUP_RUNS}
    with torch.no_grad():
        for key, model in (("reference", reference), ("new", new)):
            times = time_cuda(lambda model=model: model(*inputs), trials, flush_buf, progress, key)
            result[key] = {**summarize(times), "times_ms": times}
    result["speedup"] = speedup(result["reference"], result["new"])
    return result


def float64_gradients(reference, inputs, upstream) -> Dict[str, Any]:
    """Gradients of a float64 copy of the reference (cuDNN in fp64 has no TF32),
    named like the compared ones; {"error": ...} if they cannot be had (memory)."""
    import copy

    import torch

    try:
        model = copy.deepcopy(reference).double()
        model.zero_grad(set_to_none=True)
        xs = [x.detach().double().requires_grad_() if isinstance(x, torch.Tensor) and x.is_floating_point() else x
              for x in inputs]
        model(*xs).backward(upstream.double())
        grads = {f"input[{i}]": x.grad for i, x in enumerate(xs) if isinstance(x, torch.Tensor) and x.requires_grad}
        grads.update({name: p.grad for name, p in model.named_parameters()})
        return grads
    except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
        return {"error": short_error(error)}


def backward_step(reference, new, get_inputs, precision, dtype, tf32, trials, flush_buf, progress,
                  timing: bool) -> Dict[str, Any]:
    import torch

    tol = pass_tolerance(precision)
    threshold = backward_threshold(precision, tf32)
    result: Dict[str, Any] = {"rel_l2_threshold": threshold, "allclose_tolerance": tol, "grads": []}

    torch.manual_seed(GRADER_SEED)
    base = _to_device(get_inputs(), torch, dtype)

    def leaves():
        return [x.detach().clone().requires_grad_(x.is_floating_point()) if isinstance(x, torch.Tensor) else x
                for x in base]

    x_ref, x_new = leaves(), leaves()
    reference.zero_grad(set_to_none=True)
    new.zero_grad(set_to_none=True)
    progress.update("backward")
    out_ref = reference(*x_ref)
    out_new = new(*x_new)
    torch.manual_seed(GRADER_SEED)
    upstream = torch.randn_like(out_ref)
    if not (isinstance(out_new, torch.Tensor) and out_new.requires_grad):
        result.update(passed=False, error="ModelNew's output does not require grad (no autograd path)")
        progress.clear()
        return result
    out_ref.backward(upstream)
    out_new.backward(upstream)
    torch.cuda.synchronize()

    pairs = [(f"input[{i}]", a.grad, b.grad) for i, (a, b) in enumerate(zip(x_new, x_ref))
             if isinstance(b, torch.Tensor) and b.requires_grad]
    new_params = dict(new.named_parameters())
    for name, p in reference.named_parameters():
        q = new_params.get(name)
        pairs.append((name, None if q is None else q.grad, p.grad))
    del out_ref, out_new
    progress.update("backward: float64 truth")
    truth = float64_gradients(reference, base, upstream)
    for name, got, want in pairs:
        entry: Dict[str, Any] = {"name": name}
        if got is None or got.shape != want.shape:
            entry.update(passed=False, error="missing" if got is None else f"shape {tuple(got.shape)}")
        else:
            entry.update(
                rel_l2=relative_l2(got, want),
                max_abs_diff=(got.float() - want.float()).abs().max().item(),
                allclose=torch.allclose(got, want, atol=tol, rtol=tol),
            )
            entry["passed"] = entry["rel_l2"] <= threshold
            if isinstance(truth.get(name), torch.Tensor):
                # Not part of the verdict: says which side is further from the truth.
                entry["reference_vs_fp64"] = relative_l2(want, truth[name])
                entry["new_vs_fp64"] = relative_l2(got, truth[name])
        result["grads"].append(entry)
    result["passed"] = bool(result["grads"]) and all(e["passed"] for e in result["grads"])
    result["fp64_truth_error"] = truth.get("error")
    del truth

    if timing:
        for key, model, xs in (("reference", reference, x_ref), ("new", new, x_new)):
            def before(model=model, xs=xs):
                model.zero_grad(set_to_none=True)
                for x in xs:
                    if isinstance(x, torch.Tensor):
                        x.grad = None

            times = time_cuda(lambda model=model, xs=xs: model(*xs).backward(upstream),
                              trials, flush_buf, progress, f"{key} fwd+bwd", before)
            result[f"timing_{key}"] = {**summarize(times), "times_ms": times}
        result["speedup"] = speedup(result["timing_reference"], result["timing_new"])
        # Each backward pass alone: one forward with only that operand requiring grad, then the
        # timed torch.autograd.grad calls reuse its graph (retain_graph).
        result["passes"] = {}
        for pass_name in ("grad_input", "grad_weight"):
            entry = {}
            for key, model, xs in (("reference", reference, x_ref), ("new", new, x_new)):
                times = time_backward_pass(model, xs, upstream, pass_name, trials, flush_buf, progress,
                                           f"{key} {pass_name}")
                if times is not None:
                    entry[key] = summarize(times)
            if "reference" in entry and "new" in entry:
                entry["speedup"] = speedup(entry["reference"], entry["new"])
                result["passes"][pass_name] = entry
    progress.clear()
    return result


def time_backward_pass(model, xs, upstream, pass_name, trials, flush_buf, progress, label):
    """CUDA-event times of one backward pass (grad_input: the first tensor input's gradient;
    grad_weight: the parameters' gradients) on a graph built once; None when there is no such
    operand.  Restores every requires_grad flag it changes."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    tensor_inputs = [x for x in xs if isinstance(x, torch.Tensor) and x.is_floating_point()]
    if pass_name == "grad_input":
        if not tensor_inputs:
            return None
        wrt = [tensor_inputs[0].detach().requires_grad_(True)]
        call_xs = [wrt[0] if x is tensor_inputs[0] else x for x in xs]
        frozen = params
    else:
        if not params:
            return None
        wrt = params
        call_xs = [x.detach() if isinstance(x, torch.Tensor) else x for x in xs]
        frozen = []
    for p in frozen:
        p.requires_grad_(False)
    out = model(*call_xs)
    times = time_cuda(lambda: torch.autograd.grad(out, wrt, upstream, retain_graph=True),
                      trials, flush_buf, progress, label)
    for p in frozen:
        p.requires_grad_(True)
    del out
    return times


class BuildFailure(Exception):
    """Anything raised while loading, building or constructing the models."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(f"{stage}: {error}")
        self.stage, self.error = stage, error


def load_and_build(ref_path, new_path, dtype, progress):
    """The grader's loading: exec both sources, build ModelNew's extension
    (build_extension() if the file has one, else a timed first forward), and
    construct both models under seed 42.  Raises BuildFailure."""
    import torch

    stage = "load reference"
    try:
        ref_ns = load_source(ref_path)
        Model, get_inputs, get_init_inputs = ref_ns["Model"], ref_ns["get_inputs"], ref_ns["get_init_inputs"]
        stage = "load ModelNew"
        new_ns = load_source(new_path)
        if "ModelNew" not in new_ns:
            raise NameError(f"{new_path} defines no ModelNew")
        ModelNew = new_ns["ModelNew"]
        build: Dict[str, Any] = {}
        builder = new_ns.get("build_extension")
        if callable(builder):
            stage = "build_extension()"
            with progress.ticking("building extension"):
                start = time.perf_counter()
                returned = builder()
                wall = time.perf_counter() - start
            build = dict(returned) if isinstance(returned, dict) else {"returned": repr(returned)}
            build["wall_seconds"] = wall
        stage = "construct models"
        torch.manual_seed(GRADER_SEED)
        init = get_init_inputs()
        torch.manual_seed(GRADER_SEED)
        reference = Model(*init)
        torch.manual_seed(GRADER_SEED)
        new = ModelNew(*init)
        params = compare_parameters(reference, new)
        reference, new = reference.cuda(), new.cuda()
        if dtype is not None:
            reference, new = reference.to(dtype), new.to(dtype)
        if not callable(builder):
            stage = "first forward"
            torch.manual_seed(GRADER_SEED)
            inputs = _to_device(get_inputs(), torch, dtype)
            with progress.ticking("first forward (builds lazily)"), torch.no_grad():
                start = time.perf_counter()
                new(*inputs)
                torch.cuda.synchronize()
                build = {"first_forward_seconds": time.perf_counter() - start}
    except Exception as error:  # noqa: BLE001 - every failure here is reported the same way
        raise BuildFailure(stage, error) from error
    return reference, new, get_inputs, build, params


def nvidia_smi_driver() -> Optional[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def torch_flags(torch) -> Dict[str, Any]:
    cudnn = torch.backends.cudnn
    flags: Dict[str, Any] = {
        "cudnn.benchmark": cudnn.benchmark,
        "cudnn.deterministic": cudnn.deterministic,
        "cudnn.conv_uses_tf32": cudnn_conv_uses_tf32(torch),
    }
    try:
        flags["cudnn.allow_tf32"] = cudnn.allow_tf32
    except RuntimeError:  # conv and rnn set differently through the new API
        flags["cudnn.allow_tf32"] = "mixed"
    conv = getattr(cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        flags["cudnn.conv.fp32_precision"] = conv.fp32_precision
        flags["cudnn.fp32_precision"] = getattr(cudnn, "fp32_precision", None)
    return flags


def environment(torch) -> Dict[str, Any]:
    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": props.name,
        "capability": f"sm_{props.major}{props.minor}",
        "sm_count": props.multi_processor_count,
        "l2_bytes": getattr(props, "L2_cache_size", None),
        "memory_gib": round(props.total_memory / 2**30, 1),
        "driver": nvidia_smi_driver(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "python": platform.python_version(),
        "flags": torch_flags(torch),
    }


# ---------------------------------------------------------------------------
# Report.


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2e}"


def _print_findings(findings, limit: Optional[int], describe: bool) -> None:
    """One line per finding; --static-only adds each rule's description."""
    shown = findings if limit is None else findings[:limit]
    for file, f in shown:
        where = f"{file}:{f.line}" if f.line else file
        print(f"  {f.level:7} {where:22} {f.rule:15} {f.text[:72]}")
        if describe:
            print(f"  {'':7} {'':22} ({f.describe()})")
    if len(shown) < len(findings):
        print(f"  ... {len(findings) - len(shown)} more (all in --json)")


def _print_timing(title: str, ref: Dict[str, float], new: Dict[str, float], ratio: float) -> None:
    print(f"{title}")
    print(f"  {'':10} {'mean':>9} {'std':>9} {'min':>9} {'median':>9} {'max':>9}")
    for label, s in (("reference", ref), ("ModelNew", new)):
        print(f"  {label:10} " + " ".join(f"{s[k]:9.3f}" for k in ("mean", "std", "min", "median", "max")))
    print(f"  speedup {ratio:.3f}x (reference mean / ModelNew mean)")


def _print_build(build: Dict[str, Any], params: Dict[str, List[str]]) -> None:
    if "first_forward_seconds" in build:
        print(f"build    no build_extension(); first forward took {build['first_forward_seconds']:.2f} s")
    else:
        cached = build.get("cached")
        print(f"build    {build.get('name', '?')}: {build.get('seconds', build['wall_seconds']):.2f} s"
              f"{'' if cached is None else ' (cached)' if cached else ' (compiled)'}")
    print(f"params   equal to reference: {', '.join(params['equal']) or 'none'}"
          + (f"; differ: {', '.join(params['different'])}" if params["different"] else "")
          + (f"; not in ModelNew: {', '.join(params['missing'])}" if params["missing"] else ""))


def _print_correctness(correctness: Dict[str, Any]) -> None:
    tols = correctness["tolerances"]
    print(f"correctness  {CORRECTNESS_TRIALS} trials, allclose at {tols['current']:g} (pass rule) "
          f"and {tols['old']:g} (old rule)")
    print(f"  {'trial':5} {'seed':>10} {'max|diff|':>10} {'mean|diff|':>10} {'worst/tol':>9}  "
          f"{tols['current']:<6g} {tols['old']:<6g}")
    for i, t in enumerate(correctness["trials"], 1):
        if "error" in t:
            print(f"  {i:<5} {t['seed']:>10}  FAIL {t['error'][:70]}")
            continue
        print(f"  {i:<5} {t['seed']:>10} {_fmt(t['max_abs_diff']):>10} {_fmt(t['mean_abs_diff']):>10} "
              f"{t['worst_over_tol']:9.3g}  {'ok' if t['allclose_current'] else 'FAIL':6} "
              f"{'ok' if t['allclose_old'] else 'FAIL':6}")
    verdict = "PASS" if correctness["pass"] else "FAIL"
    print(f"  {verdict}: {correctness['passed_trials']}/{CORRECTNESS_TRIALS} at {tols['current']:g}, "
          f"{correctness['passed_old_rule']}/{CORRECTNESS_TRIALS} at {tols['old']:g}")


def _print_backward(backward: Dict[str, Any], trials: int) -> None:
    print(f"backward rel L2 to the reference must be <= {backward.get('rel_l2_threshold', 0):g}"
          "; 'vs fp64': each side against a float64 computation")
    if "error" in backward:
        print(f"  FAIL {backward['error'][:100]}")
    for g in backward.get("grads", []):
        if "error" in g:
            print(f"  {g['name']:14} FAIL ({g['error']})")
            continue
        truth = (f"  vs fp64: ref {g['reference_vs_fp64']:.1e} new {g['new_vs_fp64']:.1e}"
                 if "new_vs_fp64" in g else "")
        print(f"  {g['name']:14} rel L2 {g['rel_l2']:.2e}  max|diff| {g['max_abs_diff']:.2e}"
              f"  allclose {'ok' if g['allclose'] else 'no':2}{truth}  {'ok' if g['passed'] else 'FAIL'}")
    if "speedup" in backward:
        _print_timing(f"timing fwd+bwd, ms ({trials} trials)", backward["timing_reference"],
                      backward["timing_new"], backward["speedup"])
    for pass_name, entry in backward.get("passes", {}).items():
        _print_timing(f"timing {pass_name} alone, ms ({trials} trials)", entry["reference"], entry["new"],
                      entry["speedup"])


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    report: Dict[str, Any] = {"args": vars(args)}
    progress = Progress()

    def finish(code: int) -> int:
        report["exit_code"] = code
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
        return code

    # The GPU check comes first: without one only --static-only can do anything.
    if not args.static_only:
        try:
            import torch
        except ImportError:
            print(NO_GPU_MESSAGE, file=sys.stderr)
            return EXIT_NO_GPU
        if not torch.cuda.is_available():
            print(NO_GPU_MESSAGE, file=sys.stderr)
            return EXIT_NO_GPU

    for flag, path in (("--new", args.new), ("--ref", args.ref)):
        if not Path(path).is_file() and not (args.static_only and flag == "--ref"):
            print(f"run_check.py: error: {flag} {path}: no such file", file=sys.stderr)
            return EXIT_USAGE

    # 1. Static rules.
    findings = run_static(args.new)
    report["static"] = [
        {"file": file, "level": f.level, "rule": f.rule, "line": f.line, "text": f.text, "description": f.describe()}
        for file, f in findings
    ]
    n_errors = sum(1 for _, f in findings if f.level == static_rules.ERROR)
    n_warnings = len(findings) - n_errors
    static_code = EXIT_STATIC if n_errors else EXIT_OK
    print(f"static   {Path(args.new).name}: {n_errors} error(s), {n_warnings} warning(s)"
          + ("  -> the grader would reject it" if n_errors else ""))
    _print_findings(findings, None if args.static_only else STATIC_FINDINGS_SHOWN, describe=args.static_only)
    if args.static_only:
        return finish(static_code)

    import torch

    if args.ieee:
        set_ieee(torch)
    dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.precision]
    tf32 = args.precision == "fp32" and cudnn_conv_uses_tf32(torch)
    env = environment(torch)
    report["environment"] = env
    report["reference_mode"] = reference_mode(args.precision, tf32, args.ieee)
    l2_mib = (env["l2_bytes"] or 0) / 2**20
    print(f"gpu      {env['gpu']} ({env['capability']}, {env['sm_count']} SMs, L2 {l2_mib:.0f} MiB)"
          f"  driver {env['driver'] or '?'}")
    print(f"software torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, Python {env['python']}")
    print(f"mode     {args.precision}; reference ran as: {report['reference_mode']}")

    # 2. Load and build.
    try:
        reference, new, get_inputs, build, params = load_and_build(args.ref, args.new, dtype, progress)
    except BuildFailure as failure:
        progress.clear()
        error = failure.error
        report["build"] = {"error": short_error(error), "stage": failure.stage,
                           "traceback": "".join(traceback.format_exception(error))}
        print(f"build    FAILED at {failure.stage}: {short_error(error)}")
        for line in error_details(error):
            print(f"  | {line}")
        return finish(EXIT_BUILD)
    report["build"], report["parameters"] = build, params
    _print_build(build, params)

    failed = False

    # 3. Correctness.
    correctness = correctness_step(reference, new, get_inputs, args.precision, dtype, progress)
    report["correctness"] = correctness
    _print_correctness(correctness)
    failed |= not correctness["pass"]
    crashed = correctness["error"] is not None  # the CUDA context may be unusable now

    flush_buf = None
    if not crashed and (args.backward or not args.no_timing):
        flush_buf = torch.empty(flush_bytes(torch.cuda.get_device_properties(0)), dtype=torch.uint8, device="cuda")
        report["l2_flush_bytes"] = flush_buf.numel()

    # 4. Backward.
    if args.backward and not crashed:
        try:
            backward = backward_step(reference, new, get_inputs, args.precision, dtype, tf32, args.trials,
                                     flush_buf, progress, timing=not args.no_timing)
        except Exception as error:  # noqa: BLE001 - reported as a failed check
            progress.clear()
            backward = {"passed": False, "error": short_error(error)}
        report["backward"] = backward
        _print_backward(backward, args.trials)
        failed |= not backward["passed"]

    # 5. Timing.
    if not args.no_timing and not crashed:
        try:
            timing = timing_step(reference, new, get_inputs, dtype, args.trials, flush_buf, progress)
        except Exception as error:  # noqa: BLE001 - reported as a failed check
            progress.clear()
            timing = {"error": short_error(error)}
        report["timing"] = timing
        if "error" in timing:
            print(f"timing   FAILED: {timing['error']}")
            failed = True
        else:
            _print_timing(f"timing   ms, {args.trials} trials after {WARMUP_RUNS} warm-ups, L2 flushed "
                          f"({flush_buf.numel() / 2**20:.0f} MiB), reference block then ModelNew block",
                          timing["reference"], timing["new"], timing["speedup"])

    code = static_code or (EXIT_CHECK_FAILED if failed else EXIT_OK)
    names = {EXIT_OK: "PASS", EXIT_CHECK_FAILED: "FAIL (a check failed)", EXIT_STATIC: "FAIL (static errors)"}
    print(f"result   {names[code]}  (exit {code})")
    return finish(code)


if __name__ == "__main__":
    sys.exit(main())
