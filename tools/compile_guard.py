#!/usr/bin/env python3
"""Compile model_new.py's CUDA kernels with nvcc, no GPU needed.

model_new.py keeps its kernels in a module-level string, CUDA_KERNELS, that
is plain CUDA (no torch headers), so nvcc alone can compile it.  Doing that
for sm_80 (A100) and sm_90a (H100/H200) on a CPU machine catches compile
errors for either target before anyone spends GPU time.

Exit status: 0 both targets compile, 1 otherwise (or no CUDA_KERNELS).
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = [
    ("sm_80", "-gencode=arch=compute_80,code=sm_80"),
    ("sm_90a", "-gencode=arch=compute_90a,code=sm_90a"),
]


# Template kernels compile only when instantiated, and the launchers that instantiate them are
# not part of CUDA_KERNELS; so the guard instantiates every variant the launchers use.
INSTANTIATIONS = {
    "conv_fwd_halo_kernel": [
        "template __global__ void conv_fwd_halo_kernel<{t}, {p}, {n}>(const __grid_constant__ ConvGemmParams);".format(t=t, p=p, n=n)
        for t, p in (("float", "PREC_TF32"), ("float", "PREC_3XTF32"), ("float", "PREC_EXACT"),
                     ("f16_t", "PREC_EXACT"), ("bf16_t", "PREC_EXACT"))
        for n in (2, 4)],
    "conv_fwd_wgmma_kernel": [
        "template __global__ void conv_fwd_wgmma_kernel<{}>(const __grid_constant__ ConvGemmParams);".format(args)
        for args in ("float, PREC_TF32, 128, 4, false, false", "float, PREC_TF32, 128, 4, false, true",
                     "float, PREC_TF32, 64, 8, false, false", "float, PREC_TF32, 64, 8, true, false",
                     "float, PREC_3XTF32, 128, 2, false, false", "float, PREC_3XTF32, 128, 2, false, true",
                     "float, PREC_3XTF32, 64, 4, false, false", "f16_t, PREC_EXACT, 128, 4, false, false",
                     "bf16_t, PREC_EXACT, 128, 4, false, false", "f16_t, PREC_EXACT, 64, 8, false, false",
                     "bf16_t, PREC_EXACT, 64, 8, false, false", "f16_t, PREC_EXACT, 128, 4, false, true",
                     "bf16_t, PREC_EXACT, 128, 4, false, true", "float, PREC_TF32, 64, 4, false, true",
                     "f16_t, PREC_EXACT, 64, 4, false, true", "bf16_t, PREC_EXACT, 64, 4, false, true",
                     "float, PREC_TF32, 128, 4, false, false, true")],
    "conv_fwd_gemm_kernel": [
        "template __global__ void conv_fwd_gemm_kernel<{t}, {p}, {r}>(const __grid_constant__ ConvGemmParams);".format(t=t, p=p, r=r)
        for t, p, r in (("float", "PREC_TF32", "true"), ("float", "PREC_3XTF32", "false"),
                        ("float", "PREC_TF32_RNE", "true"),
                        ("float", "PREC_EXACT", "true"), ("f16_t", "PREC_EXACT", "true"),
                        ("bf16_t", "PREC_EXACT", "true"))],
    "conv_fwd_pointwise_kernel": [
        "template __global__ void conv_fwd_pointwise_kernel<{t}, {p}, {m}>(const __grid_constant__ ConvGemmParams);".format(t=t, p=p, m=m)
        for t, p in (("float", "PREC_TF32"), ("float", "PREC_TF32_RNE"), ("float", "PREC_3XTF32"),
                     ("float", "PREC_EXACT"), ("f16_t", "PREC_EXACT"), ("bf16_t", "PREC_EXACT"))
        for m in (64, 128)],
    "conv_fwd_pointwise_tma_kernel": [
        "template __global__ void conv_fwd_pointwise_tma_kernel<{t}, {p}, {m}>(const __grid_constant__ ConvGemmParams, "
        "const __grid_constant__ CUtensorMap, const __grid_constant__ CUtensorMap, "
        "const __grid_constant__ CUtensorMap);".format(t=t, p=p, m=m)
        for t, p in (("float", "PREC_TF32"), ("float", "PREC_TF32_RNE"), ("float", "PREC_EXACT"),
                     ("f16_t", "PREC_EXACT"), ("bf16_t", "PREC_EXACT"))
        for m in (64, 128)],
    "conv_wgrad_gemm_kernel": [
        "template __global__ void conv_wgrad_gemm_kernel<{t}, {p}>(const __grid_constant__ WgradParams);".format(t=t, p=p)
        for t, p in (("float", "PREC_TF32"), ("float", "PREC_3XTF32"), ("float", "PREC_EXACT"),
                     ("f16_t", "PREC_EXACT"), ("bf16_t", "PREC_EXACT"))],
    "conv_wgrad_window_kernel": [
        "template __global__ void conv_wgrad_window_kernel<{t}, {p}>(const __grid_constant__ WgradParams);".format(t=t, p=p)
        for t, p in (("float", "PREC_TF32"), ("float", "PREC_3XTF32"), ("float", "PREC_EXACT"),
                     ("f16_t", "PREC_EXACT"), ("bf16_t", "PREC_EXACT"))],
    "conv_wgrad_wgmma_kernel": [
        "template __global__ void conv_wgrad_wgmma_kernel<{t}, {p}, {n}, {r}>(const __grid_constant__ WgradParams, "
        "const __grid_constant__ CUtensorMap, const __grid_constant__ CUtensorMap);".format(t=t, p=p, n=n, r=r)
        for t, p, r, n in [(t, p, r, n) for t, p, r in (("float", "PREC_EXACT", "false"), ("float", "PREC_TF32", "false"),
                                                       ("float", "PREC_TF32", "true"), ("f16_t", "PREC_EXACT", "false"),
                                                       ("bf16_t", "PREC_EXACT", "false"))
                           for n in (64, 128)] + [("float", "PREC_3XTF32", "false", 64)]],
    "conv_fwd_direct_kernel": [
        f"template __global__ void conv_fwd_direct_kernel<{t}>(const __grid_constant__ DirectParams);" for t in ("float", "double", "f16_t", "bf16_t")],
    "conv_dgrad_direct_kernel": [
        f"template __global__ void conv_dgrad_direct_kernel<{t}>(const __grid_constant__ DirectParams);" for t in ("float", "double", "f16_t", "bf16_t")],
    "conv_fwd_depthwise_kernel": [
        f"template __global__ void conv_fwd_depthwise_kernel<{t}>(const __grid_constant__ DepthwiseParams);" for t in ("float", "double", "f16_t", "bf16_t")],
    "conv_fwd_depthwise_rows_kernel": [
        f"template __global__ void conv_fwd_depthwise_rows_kernel<{t}, {s}>(const __grid_constant__ DwRowsParams);"
        for t in ("float", "f16_t", "bf16_t") for s in (1, 3, 5, 7)],
    "conv_fwd_grouped_kernel": [
        f"template __global__ void conv_fwd_grouped_kernel<{t}, {kt}, {sw}>(const __grid_constant__ GroupedParams);"
        for t in ("float", "f16_t", "bf16_t") for kt in (4, 8) for sw in (1, 2)],
    "conv_dgrad_depthwise_kernel": [
        f"template __global__ void conv_dgrad_depthwise_kernel<{t}, {u}>(const __grid_constant__ DepthwiseParams);"
        for t in ("float", "double", "f16_t", "bf16_t") for u in ("true", "false")],
    "conv_wgrad_grouped_kernel": [
        f"template __global__ void conv_wgrad_grouped_kernel<{t}, {sw}>(const __grid_constant__ GroupedWgradParams);"
        for t in ("float", "f16_t", "bf16_t") for sw in (1, 2)],
    "conv_wgrad_depthwise_kernel": [
        f"template __global__ void conv_wgrad_depthwise_kernel<{t}>(const __grid_constant__ DepthwiseParams);" for t in ("float", "double", "f16_t", "bf16_t")],
    "conv_fwd_depthwise_nhwc_kernel": [
        f"template __global__ void conv_fwd_depthwise_nhwc_kernel<{t}>(const __grid_constant__ DwNhwcParams);"
        for t in ("float", "f16_t", "bf16_t")],
    "conv_wgrad_depthwise_nhwc_kernel": [
        f"template __global__ void conv_wgrad_depthwise_nhwc_kernel<{t}, {s}>(const __grid_constant__ DwWgradNhwcParams);"
        for t in ("float", "f16_t", "bf16_t") for s in (3, 5, 7)],
    "transpose_planes_kernel": [
        f"template __global__ void transpose_planes_kernel<{e}>(const {e}*, {e}*, long long, long long, long long, "
        "long long);"
        for e in ("uint32_t", "uint16_t")],
    "pack_weights_kernel": (
        [f"template __global__ void pack_weights_kernel<{t}, float>(const {t}*, float*, const PackParams);" for t in ("float", "double", "f16_t", "bf16_t")]
        + [f"template __global__ void pack_weights_kernel<{t}, {t}>(const {t}*, {t}*, const PackParams);" for t in ("f16_t", "bf16_t")]),
}


def with_instantiations(source: str) -> str:
    lines = [line for name, insts in INSTANTIATIONS.items() if f"void {name}(" in source or f" {name}(" in source
             for line in insts]
    return source + ("\n// compile guard: explicit instantiations\n" + "\n".join(lines) + "\n" if lines else "")


def cuda_kernels(path: Path):
    """CUDA_KERNELS from the file: read as a literal when it is one, so that
    neither torch nor a GPU is needed; otherwise exec() the source, which
    must not build anything at import."""
    text = path.read_text()
    for node in ast.parse(text, str(path)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "CUDA_KERNELS" for t in node.targets
        ):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
            break  # built by an expression: run the file to get it
    else:
        return None
    namespace = {"__file__": str(path), "__name__": path.stem}
    exec(compile(text, str(path), "exec"), namespace)
    value = namespace.get("CUDA_KERNELS")
    return value if isinstance(value, str) else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=REPO / "model_new.py",
                        help="file that defines CUDA_KERNELS (default: model_new.py)")
    parser.add_argument("--nvcc", default=shutil.which("nvcc") or "nvcc", help="nvcc to use")
    args = parser.parse_args(argv)

    if not args.file.is_file():
        print(f"compile_guard: {args.file} not found")
        return 1
    source = cuda_kernels(args.file)
    if source is None:
        print(f"compile_guard: {args.file.name} has no module-level string CUDA_KERNELS")
        return 1

    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        cu = Path(tmp) / "cuda_kernels.cu"
        cu.write_text(with_instantiations(source))
        for name, gencode in TARGETS:
            command = [args.nvcc, "-std=c++17", gencode, "-c", "-o", "/dev/null", str(cu)]
            start = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
            print(f"compile_guard: {args.file.name} CUDA_KERNELS for {name}: {status} in {seconds:.1f} s")
            output = (result.stdout + result.stderr).strip()
            if output:  # warnings on success, errors on failure
                print("\n".join("  " + line for line in output.splitlines()[-40:]))
            failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
