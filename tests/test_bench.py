"""bench.py: its GPU-free pieces (the shape list, GFLOP, argument parsing, the markdown report,
the chart) and its command line.  Needs no GPU and never builds model_new's extension."""

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

import bench
from run_check import REPO


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, str(REPO / "bench.py"), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


def shape(name):
    return {s.name: s for s in bench.SHAPES}[name]


# ---------------------------------------------------------------- shapes and GFLOP


def test_shapes_are_the_issues_suite():
    names = [s.name for s in bench.SHAPES]
    assert names == ["#55", "#56", "5x9", "5x9-pad-dil", "strided", "grouped", "depthwise", "1x1", "batch1"]
    assert shape("#55") == ("#55", 64, 128, 3, (8, 512, 1024), {})
    s56 = shape("#56")
    assert (s56.cin, s56.cout, s56.kernel, s56.nhw) == (64, 128, (5, 7), (8, 512, 256))
    assert s56.kwargs == {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1)}
    plain, dil = shape("5x9"), shape("5x9-pad-dil")
    assert (plain.cin, plain.cout, plain.kernel, plain.nhw, plain.kwargs) == (32, 64, (5, 9), (8, 512, 512), {})
    assert (dil.cin, dil.cout, dil.kernel, dil.nhw) == (32, 64, (5, 9), (8, 512, 512))
    assert dil.kwargs == {"padding": (2, 4), "dilation": (2, 3)}
    assert shape("strided").kwargs["stride"] == 2
    assert 1 < shape("grouped").kwargs["groups"] < shape("grouped").cin
    dw = shape("depthwise")
    assert dw.kwargs["groups"] == dw.cin == dw.cout
    assert shape("1x1").kernel == 1
    b1 = shape("batch1")
    assert b1.nhw[0] == 1 and (b1.cin, b1.cout, b1.kernel, b1.nhw[1:]) == (64, 128, 3, (512, 1024))
    assert all("bias" not in s.kwargs for s in bench.SHAPES)  # KernelBench's Model: no bias


def test_shapes_build_on_cpu():
    """Every entry is a valid nn.Conv2d, and geometry() gives nn.Conv2d's output size."""
    for s in bench.SHAPES:
        conv = torch.nn.Conv2d(s.cin, s.cout, s.kernel, bias=False, **s.kwargs)
        n, h, w = s.nhw
        x = torch.empty(1, s.cin, min(h, 64), min(w, 64))
        small = s._replace(nhw=(1, x.shape[2], x.shape[3]))
        with torch.no_grad():
            out = conv(x)
        assert tuple(out.shape[2:]) == bench.geometry(small)[5], s.name


def test_gflop():
    assert bench.gflop(shape("#55")) == pytest.approx(2 * 8 * 128 * 510 * 1022 * 64 * 9 / 1e9)
    assert bench.gflop(shape("#55")) == pytest.approx(614.86, abs=0.01)
    assert bench.gflop(shape("#56")) == pytest.approx(2 * 8 * 128 * 508 * 250 * 64 * 35 / 1e9)
    assert bench.geometry(shape("5x9-pad-dil"))[5] == (508, 496)
    assert bench.geometry(shape("strided"))[5] == (256, 256)
    assert bench.gflop(shape("depthwise")) == pytest.approx(2 * 8 * 128 * 256 * 256 * 1 * 9 / 1e9)
    assert bench.gflop(shape("grouped")) == pytest.approx(2 * 8 * 128 * 256 * 256 * 32 * 9 / 1e9)
    assert bench.gflop(shape("batch1")) == pytest.approx(bench.gflop(shape("#55")) / 8)


def test_new_row_counts_backward_three_times():
    fwd = bench.new_row(shape("#55"), "tf32", bench.FORWARD)
    fb = bench.new_row(shape("#55"), "tf32", bench.FORWARD_BACKWARD)
    assert fb["gflop"] == pytest.approx(3 * fwd["gflop"])
    assert fwd["status"] == bench.NOT_RUN_BUDGET


# ---------------------------------------------------------------- arguments


def test_parse_args_defaults():
    a = bench.parse_args([])
    assert a.shapes == [s.name for s in bench.SHAPES]
    assert a.modes == ["tf32", "ieee"]
    assert a.backward and a.channels_last
    assert a.passes == [bench.FORWARD, bench.FORWARD_BACKWARD]
    assert (a.trials, a.warmup) == (20, 3)
    assert (a.out, a.png, a.json, a.budget_s) == ("BENCHMARKS.md", "benchmarks.png", None, None)


def test_parse_args_quick_and_others():
    assert bench.parse_args(["--quick"]).trials == 5
    assert bench.parse_args(["--quick", "--trials", "7"]).trials == 7
    a = bench.parse_args(["--shapes", "56,#55,1X1,55", "--modes", "ieee", "--no-backward", "--no-channels-last",
                          "--budget-s", "200", "--json", "r.json", "--out", "b.md", "--png", ""])
    assert a.shapes == ["#56", "#55", "1x1"]
    assert a.modes == ["ieee"] and a.passes == [bench.FORWARD]
    assert not a.channels_last and a.budget_s == 200.0
    assert (a.json, a.out, a.png) == ("r.json", "b.md", "")


@pytest.mark.parametrize("argv", [["--shapes", "nope"], ["--modes", "fp16"], ["--trials", "0"],
                                  ["--budget-s", "-1"], ["--shapes", ","]])
def test_parse_args_rejects(argv, capsys):
    with pytest.raises(SystemExit) as info:
        bench.parse_args(argv)
    assert info.value.code == 2


def test_args_line():
    assert bench.args_line([]) == "python3 bench.py"
    assert bench.args_line(["--shapes", "#55", "--quick"]) == "python3 bench.py --shapes '#55' --quick"


# ---------------------------------------------------------------- the report


ENV = {"gpu": "NVIDIA H200", "sm_count": 132, "memory_gib": 139.8, "driver": "580.159.04",
       "torch": "2.11.0+cu130", "cuda": "13.0", "cudnn": 91900, "python": "3.12.3",
       "date": "2025-11-21 09:30 UTC", "commit": "c198d2b", "build": {"seconds": 65.4, "cached": False}}


def fake_results():
    def timed(row, nchw, cl, new, correct="ok", rel=2.5e-6, new_cl=None, correct_cl=None, rel_cl=None):
        row.update(status="ok", cudnn_nchw={"mean": nchw, "median": nchw - 0.01},
                   cudnn_cl=None if cl is None else {"mean": cl, "median": cl - 0.01},
                   new={"mean": new, "median": new - 0.01}, correct=correct, rel_l2=rel, max_abs=1e-5,
                   new_cl=None if new_cl is None else {"mean": new_cl, "median": new_cl - 0.01},
                   correct_cl=correct_cl, rel_l2_cl=rel_cl)
        return row

    rows = [
        timed(bench.new_row(shape("#55"), "tf32", bench.FORWARD), 4.0, 3.0, 2.0, new_cl=2.5, correct_cl="ok",
              rel_cl=3.5e-6),  # (the same verdict: not named)
        timed(bench.new_row(shape("#56"), "tf32", bench.FORWARD), 3.0, None, 2.0, "FAIL", 3.1e-4),
        bench.new_row(shape("5x9"), "tf32", bench.FORWARD),  # not run (budget)
        timed(bench.new_row(shape("#55"), "tf32", bench.FORWARD_BACKWARD), 15.0, 14.0, 15.0, new_cl=7.0,
              correct_cl="FAIL", rel_cl=2.0e-3),
        bench.new_row(shape("#56"), "tf32", bench.FORWARD_BACKWARD),
        bench.new_row(shape("5x9"), "tf32", bench.FORWARD_BACKWARD),
    ]
    err = bench.new_row(shape("#55"), "ieee", bench.FORWARD)
    err["status"] = bench.error_text(RuntimeError("CUDA out of memory | really\nsecond line"))
    rows.append(err)
    return {"trials": 20, "warmup": 3, "modes": ["tf32", "ieee"],
            "passes": [bench.FORWARD, bench.FORWARD_BACKWARD], "rows": rows}


def table(md, title):
    """The table lines under a '## title' heading."""
    lines = md.splitlines()
    start = lines.index(f"## {title}")
    out = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            out.append(line)
    return out


def cells(line):
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_render_markdown_header():
    md = bench.render_markdown(fake_results(), ENV, "python3 bench.py --quick")
    assert md.startswith("# Benchmarks: ModelNew against cuDNN\n")
    for text in ("NVIDIA H200 (132 SMs, 139.8 GiB)", "driver: 580.159.04", "torch: 2.11.0+cu130",
                 "CUDA (torch built with): 13.0", "cuDNN: 91900", "date: 2025-11-21 09:30 UTC",
                 "commit: c198d2b", "extension build: 65.4 s", "command: `python3 bench.py --quick`",
                 "20 trials after 3", "cold", "CUDA events", "mean / median", "3 times that"):
        assert text in md, text
    shapes = table(md, "Shapes")
    assert cells(shapes[2])[:2] == ["#55", "8x64x512x1024"]
    assert [cells(r)[0] for r in shapes[2:]] == ["#55", "#56", "5x9"]


def test_render_markdown_unknown_environment():
    md = bench.render_markdown(fake_results(), {"gpu": "X", "driver": None}, "python3 bench.py")
    assert "- GPU: X\n" in md and "driver: unknown" in md and "torch: unknown" in md


def test_render_markdown_tables():
    md = bench.render_markdown(fake_results(), ENV, "python3 bench.py")
    for title in ("tf32, forward", "tf32, forward + backward", "ieee, forward"):
        assert all(len(cells(line)) == 11 for line in table(md, title)), title
    fwd = table(md, "tf32, forward")
    assert fwd[0] == bench.TABLE_HEADER
    for col in ("shape", "GFLOP", "cuDNN NCHW", "cuDNN channels_last", "ModelNew (ms)", "speedup vs NCHW",
                "speedup vs channels_last", "ModelNew channels_last (ms)", "speedup, both channels_last",
                "TFLOP/s", "correctness"):
        assert col in fwd[0]
    assert len(fwd) == 2 + 3
    r55 = cells(fwd[2])
    assert r55 == ["#55", "614.9", "4.000 / 3.990", "3.000 / 2.990", "2.000 / 1.990", "2.00x", "1.50x",
                   "2.500 / 2.490", "1.20x", "307.4", "ok (2.5e-06)"]
    r56 = cells(fwd[3])
    assert r56[0] == "#56" and r56[3] == "-" and r56[5] == "1.50x" and r56[6] == "-"
    assert r56[7:9] == ["-", "-"]
    assert r56[-1] == "FAIL (3.1e-04)"
    r59 = cells(fwd[4])
    assert r59[0] == "5x9" and r59[2] == "not run (budget)" and r59[3:] == ["-"] * 8
    assert "Geometric mean speedup over 2 shapes: 1.73x vs NCHW, 1.50x vs channels_last, 1.20x both on " \
           "channels_last." in md

    fb = table(md, "tf32, forward + backward")
    assert len(fb) == 5
    r55 = cells(fb[2])
    assert r55[1] == "1844.6" and r55[5] == "1.00x" and r55[6] == "0.93x" and r55[7] == "7.000 / 6.990"
    assert r55[8] == "2.00x" and r55[9] == "123.0"
    assert r55[10] == "ok (2.5e-06); channels_last FAIL (2.0e-03)"
    assert [cells(r)[2] for r in fb[3:]] == ["not run (budget)"] * 2
    assert "Geometric mean speedup over 1 shape: 1.00x vs NCHW, 0.93x vs channels_last, 2.00x both on " \
           "channels_last." in md

    ieee = table(md, "ieee, forward")
    assert len(ieee) == 3
    err = cells(ieee[2])
    assert err[2].startswith("error: RuntimeError: CUDA out of memory \\| really")
    assert "second line" not in md
    assert "## ieee, forward + backward" not in md  # no rows: no table


def test_exit_status():
    results = fake_results()
    assert bench.exit_status(results) == 1  # #56 FAIL and the error row
    results["rows"] = [r for r in results["rows"] if r["correct"] != "FAIL" and not r["status"].startswith("error")]
    assert bench.exit_status(results) == 1  # #55's channels_last FAIL alone
    results["rows"] = [r for r in results["rows"] if r["correct_cl"] != "FAIL"]
    assert bench.exit_status(results) == 0  # rows not run (budget) are no failure


def test_write_png_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    msg = bench.write_png(fake_results(), tmp_path / "b.png")
    assert "matplotlib is not installed" in msg
    assert not (tmp_path / "b.png").exists()


def test_write_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "b.png"
    assert bench.write_png(fake_results(), path) == f"wrote {path}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the command line


def test_help_exits_0():
    out = run_cli("--help")
    assert out.returncode == 0, out.stderr
    for flag in ("--shapes", "--modes", "--no-backward", "--no-channels-last", "--trials", "--out", "--png",
                 "--json", "--budget-s", "--quick"):
        assert flag in out.stdout


def test_import_builds_nothing():
    code = "import sys, bench; print('model_new' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU exit")
def test_no_gpu_exits_2(tmp_path):
    out = run_cli("--quick", "--out", tmp_path / "B.md", "--png", tmp_path / "b.png")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "no CUDA GPU" in out.stdout
    assert not (tmp_path / "B.md").exists()


# ---------------------------------------------------------------- main(), on the CPU with stand-ins
# The GPU pieces (model_new's build, quick_check's timer and model pair, run_check's environment,
# torch.cuda) are replaced, the device is "cpu" and the clock advances 1 s per timed figure: this
# runs main()'s orchestration (rows, budget, errors, correctness, reports, exit status) everywhere.

TINY = (
    bench.Shape("tiny", 4, 8, 3, (2, 9, 11), {"padding": 1}),
    bench.Shape("broken", 4, 4, (1, 3), (1, 7, 7), {"groups": 2}),
    bench.Shape("raises", 3, 5, 3, (1, 8, 8), {"stride": 2}),
    bench.Shape("nchw_out", 6, 8, 3, (2, 5, 6), {"padding": 1}),
)


class Raises(torch.nn.Conv2d):
    def forward(self, x):
        raise RuntimeError("no kernel for this")


class NchwOut(torch.nn.Conv2d):
    """Right values, but always an NCHW result (a channels_last input gets the wrong layout)."""
    def forward(self, x):
        return super().forward(x).contiguous()


class FakeQuickCheck:
    def __init__(self, clock):
        self.clock, self.tf32, self.timed = clock, [], 0

    def set_tf32(self, enabled):
        self.tf32.append(enabled)

    def cold_time(self, fn, trials=30, warmup=3):
        for _ in range(warmup + trials):
            fn()
        self.clock[0] += 1.0
        self.timed += 1
        return 2.0, 1.5

    def pair_models(self, cin, cout, k, dtype=torch.float32, **kw):
        kw.setdefault("bias", False)
        torch.manual_seed(0)
        ref = torch.nn.Conv2d(cin, cout, k, **kw)
        torch.manual_seed(0)
        new = (Raises if cin == 3 else NchwOut if cin == 6 else torch.nn.Conv2d)(cin, cout, k, **kw)
        if cout == 4:  # "broken"
            with torch.no_grad():
                new.weight.mul_(1.01)
        return ref, new

    @staticmethod
    def rel_l2(a, b):
        return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


@pytest.fixture
def fake_gpu(monkeypatch):
    from types import SimpleNamespace
    clock = [0.0]
    qc = FakeQuickCheck(clock)
    monkeypatch.setattr(bench, "SHAPES", TINY)
    monkeypatch.setattr(bench, "SHAPES_BY_KEY", {bench._key(s.name): s for s in TINY})
    monkeypatch.setattr(bench, "DEVICE", "cpu")
    monkeypatch.setattr(bench, "_clock", lambda: clock[0])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setitem(sys.modules, "model_new", SimpleNamespace(
        build_extension=lambda: {"name": "fake", "seconds": 1.5, "cached": True}))
    monkeypatch.setitem(sys.modules, "tools.quick_check", qc)
    monkeypatch.setitem(sys.modules, "run_check", SimpleNamespace(environment=lambda torch: {
        "gpu": "Fake GPU", "sm_count": 1, "driver": None, "torch": torch.__version__, "cuda": None,
        "cudnn": None, "python": "3"}))
    return qc


def run_main(tmp_path, *argv):
    out, js = tmp_path / "B.md", tmp_path / "r.json"
    code = bench.main([*argv, "--out", str(out), "--json", str(js), "--png", str(tmp_path / "b.png")])
    return code, out.read_text(), json.loads(js.read_text())


def test_main_runs_every_row(fake_gpu, tmp_path, capsys):
    code, md, raw = run_main(tmp_path, "--shapes", "tiny", "--quick")
    assert code == 0
    rows = raw["results"]["rows"]
    assert [(r["mode"], r["pass"]) for r in rows] == [("tf32", "forward"), ("tf32", "forward+backward"),
                                                      ("ieee", "forward"), ("ieee", "forward+backward")]
    assert all(r["status"] == "ok" and r["correct"] == "ok" and r["rel_l2"] == 0.0 for r in rows)
    assert all(r["cudnn_nchw"] == r["cudnn_cl"] == r["new"] == r["new_cl"] == {"mean": 2.0, "median": 1.5}
               for r in rows)
    assert all(r["correct_cl"] == "ok" and r["rel_l2_cl"] == 0.0 for r in rows)
    assert fake_gpu.timed == 4 * 4
    assert fake_gpu.tf32[-1] is True and False in fake_gpu.tf32  # ieee rows ran with TF32 off, then back on
    assert raw["results"]["trials"] == 5 and raw["env"]["driver"] == "unknown"
    assert raw["env"]["build"]["name"] == "fake" and raw["command"].startswith("python3 bench.py --shapes tiny")
    assert "- GPU: Fake GPU (1 SMs)" in md and "## ieee, forward + backward" in md
    assert cells(table(md, "tf32, forward")[2])[5:9] == ["1.00x", "1.00x", "2.000 / 1.500", "1.00x"]
    assert cells(table(md, "tf32, forward")[2])[10] == "ok (0.0e+00)"
    printed = capsys.readouterr().out
    assert "exit 0" in printed
    png = tmp_path / "b.png"
    if importlib.util.find_spec("matplotlib") is None:
        assert "matplotlib is not installed" in printed and not png.exists()
    else:
        assert f"wrote {png}" in printed and png.read_bytes()[:4] == b"\x89PNG"


def test_main_no_backward_no_channels_last(fake_gpu, tmp_path):
    code, md, raw = run_main(tmp_path, "--shapes", "tiny", "--modes", "ieee", "--no-backward",
                             "--no-channels-last", "--trials", "2")
    assert code == 0
    (row,) = raw["results"]["rows"]
    assert (row["mode"], row["pass"], row["status"], row["cudnn_cl"], row["new_cl"], row["correct_cl"]) == (
        "ieee", "forward", "ok", None, None, None)
    assert fake_gpu.timed == 2
    assert "## tf32" not in md and "forward + backward" not in md.split("## Shapes")[1]


def test_main_reports_fail_and_error_rows(fake_gpu, tmp_path):
    code, md, raw = run_main(tmp_path, "--shapes", "broken,raises,tiny", "--modes", "tf32", "--quick")
    assert code == 1
    rows = {(r["shape"], r["pass"]): r for r in raw["results"]["rows"]}
    assert rows[("broken", "forward")]["correct"] == "FAIL" and rows[("broken", "forward")]["status"] == "ok"
    assert rows[("broken", "forward")]["rel_l2"] > 1e-3
    for p in ("forward", "forward+backward"):
        assert rows[("raises", p)]["status"] == "error: RuntimeError: no kernel for this"
        assert rows[("tiny", p)]["status"] == "ok"  # the run goes on after an error
    assert "error: RuntimeError: no kernel for this" in md and "FAIL (" in md


def test_main_fails_a_channels_last_result_in_the_wrong_layout(fake_gpu, tmp_path):
    code, md, raw = run_main(tmp_path, "--shapes", "nchw_out", "--modes", "tf32", "--no-backward", "--quick")
    (row,) = raw["results"]["rows"]
    assert code == 1 and row["status"] == "ok"
    assert (row["correct"], row["correct_cl"]) == ("ok", "FAIL")  # right values, NCHW strides
    assert cells(table(md, "tf32, forward")[2])[10] == "ok (0.0e+00); channels_last FAIL"


def test_main_budget(fake_gpu, tmp_path, capsys):
    # 1 s per timed figure, 4 figures per row: rows start at t = 0 and 4; at 8 the budget (4.5 s) is
    # spent, so the rest of "tiny" and all of "broken" (which would FAIL) are not run
    code, md, raw = run_main(tmp_path, "--shapes", "tiny,broken", "--budget-s", "4.5")
    rows = raw["results"]["rows"]
    ran = [(r["shape"], r["mode"], r["pass"]) for r in rows if r["status"] == "ok"]
    assert ran == [("tiny", "tf32", "forward"), ("tiny", "tf32", "forward+backward")]
    assert sum(r["status"] == "not run (budget)" for r in rows) == 6
    assert md.count("not run (budget)") == 6
    assert code == 0  # rows not run are no failure
    assert "broken: not run (budget)" in capsys.readouterr().out
