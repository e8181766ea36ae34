"""Run the benchmarks: ``python -m benchmarks.run [--quick] [--only NAME ...] [--out FILE]``.

Benchmarks (see BENCHMARKS.md): ``memory``, ``ep_step``, ``naive``, ``numpy``, ``parallel``,
``fold`` (Norton folding: full vs condensed), ``amplified`` (NumPy solves of amplified
blocks: block elimination vs dense).
Results go to a JSON file (default ``benchmarks/results.json``) and a markdown summary is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from analogeq import ResistiveBlock, SolverOptions
from analogeq.backends.ngspice import STAGES, NgspiceBackend

from .amplified import bench_amplified
from .amplified import markdown as amplified_markdown
from .common import BLOCKS, inputs, machine, median
from .folding import bench_fold
from .folding import markdown as fold_markdown
from .parallel import bench_parallel
from .parallel import markdown as parallel_markdown

# numpy runs before the ngspice benchmarks: after a large ngspice solve (K) this process
# became several times slower at NumPy work (see BENCHMARKS.md)
NAMES = ("memory", "numpy", "amplified", "ep_step", "naive", "parallel", "fold")
ROOT = Path(__file__).resolve().parent.parent

# (block, batch sizes, repeats) per mode
EP_PLAN = {
    "quick": [("S", (16,), 3), ("M", (16,), 2), ("K", (16,), 1)],
    "full": [("S", (16, 64), 5), ("M", (16, 64), 3), ("K", (16, 64), 3)],
}
# naive samples per block (each sample = 3 operating points)
NAIVE_PLAN = {"quick": {"S": 3, "M": 1, "K": 1}, "full": {"S": 10, "M": 3, "K": 2}}
NUMPY_REPEATS = {"quick": 3, "full": 5}


def _log(msg: str) -> None:
    print(msg, flush=True)


def _subprocess(module: str, *args: str) -> list[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        _log("    " + (line if line.startswith("#") else line[:160]))
    err = proc.stderr.read() if proc.stderr else ""
    if proc.wait() != 0:
        raise RuntimeError(f"{module} exited with {proc.returncode}: {err[-2000:]}")
    return lines


# -- memory ----------------------------------------------------------------------------

def bench_memory(mode: str) -> dict:
    args = ["10000"] + (["--quick"] if mode == "quick" else [])
    lines = _subprocess("benchmarks.memory", *args)
    res = json.loads(lines[-1])
    res["target_growth_MB"] = 50.0
    res["target_met"] = res["growth_MB"] < 50.0
    return res


# -- EP step on ngspice ------------------------------------------------------------------

def _ep_once(block: ResistiveBlock, u, delta) -> dict:
    be = NgspiceBackend(block.options, timings=defaultdict(float))
    t0 = time.perf_counter()
    block.ep_gradients(u, delta, backend=be)
    total = time.perf_counter() - t0
    parts = {s: be.timings.get(s, 0.0) for s in STAGES}
    parts["glue"] = total - sum(parts.values())
    parts["total"] = total
    return parts


def bench_ep_step(mode: str) -> dict:
    rows = []
    for name, batches, repeats in EP_PLAN[mode]:
        sizes = BLOCKS[name]
        block = ResistiveBlock(sizes, seed=0)
        for batch in batches:
            u, delta = inputs(sizes[0], sizes[-1], batch)
            runs = []
            for r in range(repeats):
                runs.append(_ep_once(block, u, delta))
                _log(f"    ep_step {name} B={batch} repeat {r + 1}/{repeats}: "
                     f"{runs[-1]['total']:.2f} s")
            med = {k: median([x[k] for x in runs]) for k in runs[0]}
            plain = None
            if mode == "full" or name == "S":  # the uninstrumented package call, once
                t0 = time.perf_counter()
                block.ep_gradients(u, delta, backend="ngspice")
                plain = time.perf_counter() - t0
            total = med["total"]
            rows.append({
                "block": name, "sizes": sizes, "batch": batch, "repeats": repeats,
                "median_s": med,
                "per_sample_s": total / batch,
                "sweep_points": 3 * batch,
                "analysis_per_point_s": med["analysis"] / (3 * batch),
                "outside_analysis_share": 1.0 - med["analysis"] / total,
                "uninstrumented_total_s": plain,
                "runs": runs,
            })
    k_rows = [r for r in rows if r["block"] == "K"]
    return {
        "rows": rows,
        "targets": {
            "K_per_sample_le_0.3s": (
                all(r["per_sample_s"] <= 0.3 for r in k_rows) if k_rows else None
            ),
            "outside_analysis_share_le_15pct": all(
                r["outside_analysis_share"] <= 0.15 for r in rows
            ),
        },
    }


# -- naive PySpice baseline --------------------------------------------------------------

def _analogeq_per_sample(name: str, ep: dict | None) -> tuple[float, int, str]:
    """Per-sample analogeq EP time for block ``name``: from this run's ep_step rows (the
    largest batch), else measured now at B=16."""
    if ep:
        rows = [r for r in ep["rows"] if r["block"] == name]
        if rows:
            r = max(rows, key=lambda x: x["batch"])
            return r["per_sample_s"], r["batch"], "ep_step"
    sizes = BLOCKS[name]
    u, delta = inputs(sizes[0], sizes[-1], 16)
    t = _ep_once(ResistiveBlock(sizes, seed=0), u, delta)["total"]
    return t / 16, 16, "measured in naive"


def bench_naive(mode: str, ep: dict | None) -> dict:
    plan = NAIVE_PLAN[mode]
    opts = dataclasses.asdict(SolverOptions())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        spec_blocks = [
            {"name": n, "sizes": BLOCKS[n], "samples": k, "grad_path": f"{tmp}/{n}.npz"}
            for n, k in plan.items()
        ]
        lines = _subprocess(
            "benchmarks.naive", json.dumps({"blocks": spec_blocks, "options": opts})
        )
        results = {r["name"]: r for r in (json.loads(x) for x in lines if x.startswith("{"))}
        for n in plan:
            r = results.get(n, {"errors": ["no result"]})
            sizes = BLOCKS[n]
            ok = r.get("samples_ok", 0)
            # gradient agreement: analogeq batched EP on the same samples and beta
            if ok and os.path.exists(f"{tmp}/{n}.npz"):
                block = ResistiveBlock(sizes, seed=0)
                u, delta = inputs(sizes[0], sizes[-1], r["samples"])
                beta = block.default_beta(delta)
                ref = block.ep_gradients(u[:ok], delta[:ok], beta=beta, backend="ngspice")
                with np.load(f"{tmp}/{n}.npz") as z:
                    naive_g = [z[f"arr_{k}"] for k in range(len(z.files))]
                scale = max(float(np.abs(g).max()) for g in ref.conductances)
                err = max(
                    float(np.abs(a - b).max())
                    for a, b in zip(naive_g, ref.conductances, strict=True)
                )
                r["grad_max_abs_diff_rel"] = err / scale
            a_ps, a_batch, a_src = _analogeq_per_sample(n, ep)
            r["analogeq_per_sample_s"] = a_ps
            r["analogeq_batch"] = a_batch
            r["analogeq_source"] = a_src
            med = r.get("median_per_sample_s")
            r["ratio_naive_over_analogeq"] = med / a_ps if med and med == med else None
            r["name"] = n
            rows.append(r)
    ratios = {r["name"]: r["ratio_naive_over_analogeq"] for r in rows}
    return {
        "rows": rows,
        "targets": {
            "ratio_ge_20_on_M_and_K": all(
                (ratios.get(n) or 0) >= 20 for n in ("M", "K") if n in ratios
            ),
        },
    }


# -- NumPy backend -----------------------------------------------------------------------

def bench_numpy(mode: str) -> dict:
    rows = []
    for name, batches, _ in EP_PLAN[mode]:
        sizes = BLOCKS[name]
        block = ResistiveBlock(sizes, seed=0)
        for batch in batches:
            u, delta = inputs(sizes[0], sizes[-1], batch)
            ts = []
            for _ in range(NUMPY_REPEATS[mode]):
                t0 = time.perf_counter()
                block.ep_gradients(u, delta, backend="numpy")
                ts.append(time.perf_counter() - t0)
            rows.append({"block": name, "sizes": sizes, "batch": batch,
                         "median_s": median(ts), "per_sample_s": median(ts) / batch,
                         "repeats": len(ts)})
            _log(f"    numpy {name} B={batch}: {median(ts):.3f} s")
        # agreement with ngspice on the free phase (first batch size)
        u, _ = inputs(sizes[0], sizes[-1], batches[0])
        v_np = block.free(u, backend="numpy").solution
        v_ng = block.free(u, backend="ngspice").solution
        idx = v_ng.node_indices(v_np.node_names)
        dv = float(np.abs(v_np.voltages_V - v_ng.voltages_V[:, idx]).max())
        for r in rows:
            if r["block"] == name:
                r["free_max_abs_dV_vs_ngspice_V"] = dv
        _log(f"    numpy {name}: max |dV| vs ngspice (free phase, B={batches[0]}) = {dv:.2e} V")
    return {"rows": rows}


# -- report ------------------------------------------------------------------------------

def markdown(res: dict) -> str:
    m = res["machine"]
    out = [
        f"Mode: {res['mode']}; date {m['date']}; {m['cpu']}, {m['cores']} cores, "
        f"{m['ram_GB']} GB RAM; ngspice {m['ngspice']}, Python {m['python']}, "
        f"NumPy {m['numpy']}.",
        "",
    ]
    b = res["benchmarks"]
    if "memory" in b:
        r = b["memory"]
        out += [
            "### memory: RSS over ngspice solves (one process)",
            "",
            "| solves after warm-up | RSS (MB) |",
            "|---:|---:|",
            *[f"| {c} | {v:.1f} |" for c, v in r["trace"]],
            "",
            f"{r['solves']} solves ({r['ms_per_solve']:.2f} ms each, {r['errors']} errors); "
            f"RSS {r['rss_start_MB']:.1f} MB at start, {r['rss_after_warmup_MB']:.1f} MB after "
            f"{r['warmup']} warm-up solves; growth {r['growth_MB']:.1f} MB "
            f"(fit {r['slope_MB_per_1000']:.2f} MB per 1000). Target < 50 MB: "
            f"{'met' if r['target_met'] else 'MISSED'}. {r['note']}",
            "",
        ]
    if "ep_step" in b:
        out += [
            "### ep_step: analogeq EP step (free + two nudged phases) on ngspice",
            "",
            "| block | B | repeats | total (s) | per sample (s) | emit | load | analysis | read "
            "| reset | glue | outside analysis |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in b["ep_step"]["rows"]:
            t = r["median_s"]
            out.append(
                f"| {r['block']} {tuple(r['sizes'])} | {r['batch']} | {r['repeats']} "
                f"| {t['total']:.3f} | {r['per_sample_s']:.4f} "
                + "".join(f"| {t[s]:.3f} " for s in (*STAGES, "glue"))
                + f"| {100 * r['outside_analysis_share']:.1f}% |"
            )
        out += ["", f"Targets: {b['ep_step']['targets']}", ""]
    if "naive" in b:
        out += [
            "### naive: per-sample high-level PySpice (3 x operating_point) vs analogeq",
            "",
            "| block | samples | build (s) | naive per op (s) | naive per sample (s) "
            "| analogeq per sample (s) | ratio | grad diff (rel) | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in b["naive"]["rows"]:
            ratio = r.get("ratio_naive_over_analogeq")
            gd = r.get("grad_max_abs_diff_rel")
            out.append(
                f"| {r['name']} | {r.get('samples_ok', 0)} | {r.get('build_s', float('nan')):.2f} "
                f"| {r.get('median_per_op_s', float('nan')):.3f} "
                f"| {r.get('median_per_sample_s', float('nan')):.3f} "
                f"| {r['analogeq_per_sample_s']:.4f} (B={r['analogeq_batch']}) "
                f"| {f'{ratio:.1f}x' if ratio else 'n/a'} "
                f"| {f'{gd:.1e}' if gd is not None else 'n/a'} "
                f"| {len(r.get('errors', []))} |"
            )
        out += ["", f"Targets: {b['naive']['targets']}", ""]
    if "numpy" in b:
        out += [
            "### numpy: NumPy backend EP step",
            "",
            "| block | B | total (s) | per sample (s) | free-phase max abs dV vs ngspice (V) |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in b["numpy"]["rows"]:
            out.append(
                f"| {r['block']} {tuple(r['sizes'])} | {r['batch']} | {r['median_s']:.4f} "
                f"| {r['per_sample_s']:.5f} | {r['free_max_abs_dV_vs_ngspice_V']:.1e} |"
            )
        out.append("")
    if "parallel" in b:
        out += parallel_markdown(b["parallel"])
    if "fold" in b:
        out += fold_markdown(b["fold"])
    if "amplified" in b:
        out += amplified_markdown(b["amplified"])
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller batches")
    ap.add_argument("--only", nargs="+", choices=NAMES, help="run only these benchmarks")
    ap.add_argument("--out", default=None,
                    help="JSON results (default benchmarks/results.json, or "
                    "benchmarks/results_quick.json with --quick)")
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full"
    todo = args.only or list(NAMES)
    res = {"mode": mode, "machine": machine(), "benchmarks": {}, "seconds": {}}
    _log(f"analogeq benchmarks ({mode}): {', '.join(todo)}")
    t_all = time.perf_counter()
    for name in NAMES:
        if name not in todo:
            continue
        _log(f"== {name}")
        t0 = time.perf_counter()
        if name == "memory":
            out = bench_memory(mode)
        elif name == "ep_step":
            out = bench_ep_step(mode)
        elif name == "naive":
            out = bench_naive(mode, res["benchmarks"].get("ep_step"))
        elif name == "parallel":
            out = bench_parallel(mode)
        elif name == "fold":
            out = bench_fold(mode)
        elif name == "amplified":
            out = bench_amplified(mode)
        else:
            out = bench_numpy(mode)
        res["benchmarks"][name] = out
        res["seconds"][name] = time.perf_counter() - t0
        _log(f"   ({res['seconds'][name]:.1f} s)")
    res["seconds"]["total"] = time.perf_counter() - t_all
    out = args.out or str(
        ROOT / "benchmarks" / ("results_quick.json" if args.quick else "results.json"))
    Path(out).write_text(json.dumps(res, indent=1, default=float) + "\n")
    print()
    print(markdown(res))
    print(f"Total {res['seconds']['total']:.1f} s; results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
