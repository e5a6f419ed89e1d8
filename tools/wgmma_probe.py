"""Timing probes for the sm_90a forward kernel on #55 / #56 (cold L2, CUDA events).

    python3 tools/wgmma_probe.py              # batch 1 and 8: sm_80 vs sm_90a kernels, the sm_90a
                                              # kernel's tilings, RNA vs truncation
    python3 tools/wgmma_probe.py --parts      # take the kernel apart: each run leaves stages out
                                              # (KB_CONV_PROFILE_SKIP, see ConvGemmParams::profile_skip)
    python3 tools/wgmma_probe.py --swap --cases dgrad,dgrad56   # the default against KB_CONV_WGMMA_SWAP=0
    python3 tools/wgmma_probe.py --cases dgrad --vary 'KB_CONV_WGMMA_SWAP=unset|0'   # any launcher variable
    ncu --clock-control none -k regex:wgmma --launch-skip 1 --launch-count 1 python3 tools/wgmma_probe.py --ncu-shot
                                              # (--cases NAME: that case instead of #55, e.g. dgrad)
"""
import argparse
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402
from tools.quick_check import cold_time  # noqa: E402

SKIPS = {0: "full", 1: "no stores", 2: "no halo", 4: "no weights", 6: "no loads", 8: "no MMA",
         7: "MMA only", 23: "MMA only, A aligned", 14: "stores only", 9: "loads only",
         32: "in-line epilogue", 64: "4-unit halo batches", 96: "both earlier versions",
         65: "no stores, 4-unit batches", 73: "loads only, 4-unit batches", 46: "in-line stores only",
         15: "skeleton (nothing)",
         270: "stores only, no fence", 526: "stores only, no writes", 1038: "stores only, no staging",
         1550: "stores only, neither", 256: "no epilogue fence", 1024: "no staging",
         2048: "full, output in L2", 2062: "stores only, output in L2"}


def geometry(pad):
    """The launcher's geometry vector for stride 1, dilation 1, one group, zero padding: pad an int (all
    four sides) or (top, bottom, left, right)."""
    return [1, 1] + list(pad if isinstance(pad, tuple) else (pad,) * 4) + [1, 1, 1, 0]


def one(label, w, shape, algo=2, prec=0, trials=10, pad=0, dtype=torch.float32):
    """Mean ms of the launcher's forward (padding as in geometry())."""
    ext = M._ext()
    geo = geometry(pad)
    x = torch.rand(*shape, device="cuda").to(dtype)
    w = w.to(dtype)
    return cold_time(lambda: ext.conv2d_forward(x, w, None, geo, algo, prec, False, False), trials=trials)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ncu-shot", action="store_true",
                    help="run each of --cases twice and nothing else (for ncu; see the docstring)")
    ap.add_argument("--parts", action="store_true")
    ap.add_argument("--skip", type=int)
    ap.add_argument("--cases", default="#55,#56",
                    help="with --parts / --rounds / --swap: shapes (#55,#56,#55-n1,#55-pad1,dgrad,dgrad-aligned,dgrad-c64,dgrad56,#55-fp16,#55-bf16,#55-pad1-fp16,kb63)")
    ap.add_argument("--batches", action="store_true", help="#55's layer at batch 1..8: ours and cuDNN (NCHW)")
    ap.add_argument("--only", help="with --parts: comma-separated KB_CONV_PROFILE_SKIP values to run")
    ap.add_argument("--overhead", action="store_true",
                    help="#55 / #56 (TF32): ModelNew's forward against the bare launcher call, and the kernels one forward runs")
    ap.add_argument("--latency", action="store_true",
                    help="CPU time per call (ModelNew, bare launcher, nn.Conv2d) and the grader's timing "
                         "against cold_time's on #55 / #56 / #55 at batch 1")
    ap.add_argument("--rounds", action="store_true",
                    help="bulk epilogue rounds (KB_CONV_WGMMA_RC) x tilings (KB_CONV_WGMMA_CFG) on --cases; "
                         "each variant's output must equal the default's bit for bit")
    ap.add_argument("--swap", action="store_true",
                    help="the default (the swapped narrow variant where the output allows it) against "
                         "KB_CONV_WGMMA_SWAP=0 on --cases, grader-style timing, and each pair's agreement")
    ap.add_argument("--vary", action="append", default=[],
                    help="VAR=v1|v2|...: time --cases under each value of environment variable VAR (read by "
                         "the launcher at every call; 'unset' leaves it out), two alternating rounds, "
                         "grader-style; each output must equal the unset one's bit for bit (repeatable)")
    ap.add_argument("--ieee", action="store_true",
                    help="#55 / #56 in IEEE mode: sm_80 3xTF32 kernel vs the wgmma 3xTF32 instance's tilings, "
                         "and the default's agreement with cuDNN (IEEE)")
    ap.add_argument("--prec", type=int, default=0,
                    help="precision code for --vary / --rounds / --swap / --ncu-shot cases (0 TF32, 1 3xTF32)")
    args = ap.parse_args()
    global PREC
    PREC = args.prec
    torch.manual_seed(0)
    w55 = torch.randn(128, 64, 3, 3, device="cuda") * 0.05
    w56 = torch.randn(128, 64, 5, 7, device="cuda") * 0.05
    w63 = torch.randn(128, 16, 3, 3, device="cuda") * 0.1
    # #55's grad-input as the launcher runs it: dY (rows of 1022) against the transposed weights,
    # padding 2, 64 output channels: the narrow variant with 8-byte halo loads; "dgrad-aligned" the
    # same with rows of 1024 (16-byte loads), "dgrad-c64" with 64 input channels (half the chunks).
    # "#55-pad1": #55 with padding 1, output rows of 1024 floats (whole 32-byte sectors).
    w55_t = w55.transpose(0, 1).flip(2, 3).contiguous()
    w56_t = w56.transpose(0, 1).flip(2, 3).contiguous()
    cases = {"#55": (w55, (8, 64, 512, 1024), 0), "#56": (w56, (8, 64, 512, 256), 0),
             "#55-pad1": (w55, (8, 64, 512, 1024), 1), "dgrad": (w55_t, (8, 128, 510, 1022), 2),
             "dgrad-aligned": (w55_t, (8, 128, 510, 1024), 2),
             "dgrad-c64": (w55_t[:, :64].contiguous(), (8, 64, 510, 1022), 2),
             "#55-n1": (w55, (1, 64, 512, 1024), 0),
             "dgrad56": (w56_t, (8, 128, 508, 250), (4, 4, 6, 6)),  # #56's grad-input (--rounds / --swap)
             "#55-fp16": (w55, (8, 64, 512, 1024), 0, torch.float16),
             "#55-bf16": (w55, (8, 64, 512, 1024), 0, torch.bfloat16),
             "#55-pad1-fp16": (w55, (8, 64, 512, 1024), 1, torch.float16),
             "kb63": (w63, (16, 16, 1024, 1024), 0)}  # KernelBench #63: 16 channels, 8.6 GB of output
    if args.ncu_shot:  # each of --cases twice: give ncu one case and --launch-skip 1 to profile a warm run
        for name in args.cases.split(","):
            run = case_call(cases, name)
            for _ in range(2):
                run()
            torch.cuda.synchronize()
        return
    if args.skip is not None:  # child of --parts
        names = args.cases.split(",")
        times = [f"{n} {one(n, *cases[n][:2], prec=PREC, pad=cases[n][2], dtype=(cases[n] + (torch.float32,))[3]):.3f} ms"
                 for n in names]
        print(f"{args.skip:3d} {SKIPS.get(args.skip, '?'):20s} " + "  ".join(times), flush=True)
        return
    if args.batches:
        from tools.quick_check import pair_models
        ref, new = pair_models(64, 128, 3)
        for n in range(1, 9):
            x = torch.rand(n, 64, 512, 1024, device="cuda")
            with torch.no_grad():
                r, o = cold_time(lambda: ref(x), trials=20), cold_time(lambda: new(x), trials=20)
            print(f"#55 N={n}: cuDNN {r[0]:.3f} / {r[1]:.3f} ms  ours {o[0]:.3f} / {o[1]:.3f} ms  "
                  f"ours per image {o[0] / n:.3f} ms  speedup {r[0] / o[0]:.2f}x", flush=True)
        return
    if args.ieee:
        ieee_sweep(w55, w56)
        return
    if args.overhead:
        overhead()
        return
    if args.latency:
        latency()
        return
    if args.rounds:
        rounds_sweep(cases, args.cases)
        return
    if args.swap:
        swap_sweep(cases, args.cases)
        return
    if args.vary:
        for spec in args.vary:
            var, values = spec.split("=", 1)
            env_sweep(cases, args.cases, var, values.split("|"))
        return
    if args.parts:
        M._ext()
        for s in ([int(v) for v in args.only.split(",")] if args.only else SKIPS):
            env = dict(os.environ, KB_CONV_PROFILE_SKIP=str(s))
            subprocess.run([sys.executable, __file__, "--skip", str(s), "--cases", args.cases, "--prec", str(PREC)],
                           env=env, check=False)
        return
    # Tilings of the sm_90a kernel (KB_CONV_WGMMA_CFG = taps per k-tile, weight stages, halo
    # buffers, k-tiles of MMAs in flight), each timed against the sm_80 kernel in the same run.
    cfgs = {"#55": ["4,4,3,1", "4,4,3,2", "3,5,3,1", "3,5,3,2", "2,8,3,2", "3,6,2,2", "4,4,2,1", "3,5,2,2"],
            "#56": ["4,3,3,1", "4,4,2,1", "4,4,2,2", "3,4,3,2", "2,6,3,2", "3,5,2,2", "2,8,2,2"]}
    for label, w, hw in (("#55", w55, (512, 1024)), ("#56", w56, (512, 256))):
        for n in (1, 8):
            row = [f"sm80-rna {one(label, w, (n, 64) + hw, 1, 0):.3f}",
                   f"wgmma-default {one(label, w, (n, 64) + hw, 2, 0):.3f}"]
            for cfg in (cfgs[label] if n == 8 else []):
                os.environ["KB_CONV_WGMMA_CFG"] = cfg  # read by the launcher at every call
                row.append(f"[{cfg}] {one(label, w, (n, 64) + hw, 2, 0):.3f}")
                os.environ.pop("KB_CONV_WGMMA_CFG")
            row.append(f"wgmma-trunc {one(label, w, (n, 64) + hw, 2, 2):.3f}")
            print(f"{label} N={n}: " + "  ".join(row) + " ms", flush=True)

def case_call(cases, name):
    """A fresh random input for case `name` and a closure that runs the launcher's forward on it (the
    wgmma algorithm, TF32; padding as in geometry())."""
    w, shape, pad = cases[name][:3]
    dtype = (cases[name] + (torch.float32,))[3]
    geo = geometry(pad)
    x = torch.rand(*shape, device="cuda").to(dtype)
    wd = w.to(dtype)
    ext = M._ext()
    return lambda: ext.conv2d_forward(x, wd, None, geo, 2, PREC, False, False)


PREC = 0  # the launcher's precision code for case_call (--prec)


def rounds_sweep(cases, names):
    """Bulk epilogue rounds of 16 / 32 / 64 channels (KB_CONV_WGMMA_RC) and the tilings that make
    room for the larger staging (KB_CONV_WGMMA_CFG): time (cold L2, 10 trials) and equality with the
    default configuration's output."""
    variants = [(None, None), ("16", None), ("32", None), ("64", None), ("16", "3,5,3,1"), ("16", "3,5,2,1"),
                ("32", "3,4,3,1"), ("32", "3,5,2,1"), ("64", "3,4,2,1"), ("16", "2,6,3,1")]
    for name in names.split(","):
        run = case_call(cases, name)
        ref = run().clone()
        for rc, cfg in variants:
            if rc:
                os.environ["KB_CONV_WGMMA_RC"] = rc
            if cfg:
                os.environ["KB_CONV_WGMMA_CFG"] = cfg
            out = run()
            same = torch.equal(out, ref)
            t = cold_time(run, trials=10)
            print(f"{name:9s} rc {rc or 'default':7s} cfg {cfg or 'default':8s} {t[0]:.3f} / {t[1]:.3f} ms "
                  f"{'equal' if same else 'DIFFERS max ' + format((out.float() - ref.float()).abs().max().item(), '.3g')}",
                  flush=True)
            for k in ("KB_CONV_WGMMA_RC", "KB_CONV_WGMMA_CFG"):
                os.environ.pop(k, None)


def alternating(run, var, values, on_output, trials=20, rounds=2):
    """run() timed (grader-style cold L2, `trials` trials) under each value of environment variable
    `var` (read by the launcher at every call; 'unset' removes it), alternating over `rounds` rounds;
    on_output(value, output) sees each round's output first.  Returns {value: [(mean, median), ...]};
    restores `var`."""
    saved = os.environ.pop(var, None)
    times = {v: [] for v in values}
    for _ in range(rounds):
        for v in values:
            if v != "unset":
                os.environ[var] = v
            on_output(v, run())
            times[v].append(cold_time(run, trials=trials, grader_style=True))
            os.environ.pop(var, None)
    if saved is not None:
        os.environ[var] = saved
    return times


def swap_sweep(cases, names):
    """Each case (TF32, 20 trials, grader-style cold L2) on the default launcher (the swapped narrow
    variant where the output allows it) and under KB_CONV_WGMMA_SWAP=0 (read at every call),
    alternating twice, with the relative L2 difference of the two outputs."""
    # "default" is the swapped narrow variant only where it applies (narrow GEMMs with sector-aligned
    # outputs); elsewhere both rows time the same kernel
    labels = {"unset": "default", "0": "SWAP=0"}
    for name in names.split(","):
        run = case_call(cases, name)
        outs = {}
        times = alternating(run, "KB_CONV_WGMMA_SWAP", list(labels), lambda v, out: outs.__setitem__(v, out.float()))
        a, b = outs["unset"], outs["0"]
        diff = ((a - b).norm() / b.norm()).item()
        print(f"{name:14s} " + "  ".join(f"{labels[k]} {v[0][0]:.3f}/{v[0][1]:.3f}, {v[1][0]:.3f}/{v[1][1]:.3f}"
                                          for k, v in times.items())
              + f" ms (mean/median, two rounds)  rel L2 {diff:.2e}  NaN {int(torch.isnan(a).sum())}", flush=True)


def env_sweep(cases, names, var, values):
    """Each case under each value of environment variable `var` (`alternating`), and whether every
    round's output equals the one without `var` bit for bit."""
    for name in names.split(","):
        run = case_call(cases, name)
        saved = os.environ.pop(var, None)
        ref = run().clone()
        if saved is not None:
            os.environ[var] = saved
        same = {v: True for v in values}

        def check(v, out):
            same[v] = same[v] and torch.equal(out, ref)

        times = alternating(run, var, values, check)
        for v in values:
            print(f"{name:10s} {var}={v:12s} " + "  ".join(f"{t[0]:.3f}/{t[1]:.3f}" for t in times[v])
                  + f" ms (mean/median per round)  {'equal' if same[v] else 'DIFFERS'}", flush=True)


def latency():
    """The CPU side of one call, and what of it the grader's timing sees.  The grader synchronises,
    queues the L2 flush, records the start event and then calls the model: CPU time spent before the
    first kernel is queued beyond the flush's own ~40 us shows up in its number.  Here: CPU us per
    call (no synchronisation inside the loop, 200 calls) for ModelNew, the bare launcher and
    nn.Conv2d, then the grader's timing against cold_time's (which queues the flush without
    synchronising first, so the CPU runs ahead) for ModelNew and nn.Conv2d, same run."""
    import time

    from tools.quick_check import pair_models

    def cpu_us(fn, calls=200):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        return (t1 - t0) / calls * 1e6

    for label, k, hw in (("#55", 3, (512, 1024)), ("#56", (5, 7), (512, 256)), ("#55 N=1", 3, (512, 1024))):
        ref, new = pair_models(64, 128, k)
        x = torch.rand(1 if "N=1" in label else 8, 64, *hw, device="cuda")
        w = new.conv2d.weight.detach()
        geo = [1, 1, 0, 0, 0, 0, 1, 1, 1, 0]
        with torch.no_grad():
            # CPU per call on a tiny input of the same layer (the kernels then take ~no GPU time, so
            # the loop measures the CPU, not a full launch queue)
            xs = torch.rand(1, 64, 40, 72, device="cuda")
            cpu_new, cpu_ref = cpu_us(lambda: new(xs)), cpu_us(lambda: ref(xs))
            cpu_bare = cpu_us(lambda: M._ext().conv2d_forward(xs, w, None, geo, 2, 0, False, False))
            g_new = cold_time(lambda: new(x), trials=30, grader_style=True)
            g_ref = cold_time(lambda: ref(x), trials=30, grader_style=True)
            c_new, c_ref = cold_time(lambda: new(x), trials=30), cold_time(lambda: ref(x), trials=30)
        print(f"{label}: CPU per call ModelNew {cpu_new:.1f} us, bare launcher {cpu_bare:.1f} us, nn.Conv2d "
              f"{cpu_ref:.1f} us | grader timing ModelNew {g_new[0]:.3f} / {g_new[1]:.3f} ms, nn.Conv2d "
              f"{g_ref[0]:.3f} / {g_ref[1]:.3f} | cold_time ModelNew {c_new[0]:.3f} / {c_new[1]:.3f}, nn.Conv2d "
              f"{c_ref[0]:.3f} / {c_ref[1]:.3f} (mean / median)", flush=True)


def overhead():
    """Where a ModelNew call's time goes beyond the GEMM kernel: the module call (autograd.Function,
    precision rule, allocation, weight pack) against the extension's forward alone, and the kernels
    (with their device time) that one call launches."""
    from tools.quick_check import pair_models
    for label, k, hw in (("#55", 3, (512, 1024)), ("#56", (5, 7), (512, 256))):
        _, new = pair_models(64, 128, k)
        x = torch.rand(8, 64, *hw, device="cuda")
        w = new.conv2d.weight.detach()
        geo = [1, 1, 0, 0, 0, 0, 1, 1, 1, 0]
        with torch.no_grad():
            mod = cold_time(lambda: new(x), trials=30)
            bare = cold_time(lambda: M._ext().conv2d_forward(x, w, None, geo, 2, 0, False, False), trials=30)
        print(f"{label}: ModelNew {mod[0]:.3f} / {mod[1]:.3f} ms  bare launcher {bare[0]:.3f} / {bare[1]:.3f} ms "
              f"(mean / median)", flush=True)
        with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            new(x)
            torch.cuda.synchronize()
        for e in prof.key_averages():
            print(f"    {e.count} x {e.key[:90]:90s} {e.device_time_total / 1000:.3f} ms", flush=True)


def ieee_sweep(w55, w56):
    """3xTF32 (prec 1): the sm_80 halo kernel, the wgmma instance's default tiling and others that
    fit (KB_CONV_WGMMA_CFG), then partial sums of 1 to 6 k-tiles (KB_CONV_WGMMA_FOLD): the time,
    and the output against cuDNN with TF32 off and against float64 (image 0)."""
    cfgs = {"#55": ["2,3,3,1", "1,8,2,1"], "#56": ["1,6,2,1"]}
    geo = [1, 1, 0, 0, 0, 0, 1, 1, 1, 0]
    for label, w, hw in (("#55", w55, (512, 1024)), ("#56", w56, (512, 256))):
        shape = (8, 64) + hw
        row = [f"sm80-3x {one(label, w, shape, 1, 1):.3f}", f"wgmma-3x-default {one(label, w, shape, 2, 1):.3f}"]
        for cfg in cfgs[label]:
            os.environ["KB_CONV_WGMMA_CFG"] = cfg
            row.append(f"[{cfg}] {one(label, w, shape, 2, 1):.3f}")
            os.environ.pop("KB_CONV_WGMMA_CFG")
        print(f"{label} IEEE N=8: " + "  ".join(row) + " ms", flush=True)
        x = torch.rand(*shape, device="cuda")
        saved = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        ref = torch.conv2d(x, w)
        torch.backends.cudnn.allow_tf32 = saved
        truth = torch.conv2d(x[:1].double(), w.double())
        ref64 = ((ref[:1].double() - truth).norm() / truth.norm()).item()
        for fold in ("1", "2", "3", "4", "6"):
            os.environ["KB_CONV_WGMMA_FOLD"] = fold  # read by the launcher at every call
            ms = one(label, w, shape, 2, 1)
            ours = M._ext().conv2d_forward(x, w, None, geo, 2, 1, False, False)
            os.environ.pop("KB_CONV_WGMMA_FOLD")
            diff = (ours - ref).abs()
            worst = (diff / (1e-4 + 1e-4 * ref.abs())).max().item()  # allclose passes while this is <= 1
            err64 = ((ours[:1].double() - truth).norm() / truth.norm()).item()
            print(f"{label} IEEE fold {fold}: {ms:.3f} ms  vs cuDNN: allclose(1e-4) "
                  f"{torch.allclose(ours, ref, atol=1e-4, rtol=1e-4)}, max abs {diff.max().item():.3e}, "
                  f"worst |d| / tol {worst:.3f}; from float64 (image 0): ours {err64:.3e}, cuDNN {ref64:.3e}",
                  flush=True)


if __name__ == "__main__":
    main()
