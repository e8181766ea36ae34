"""Command-line interface: ``analogeq train|demo|gradcheck|diagnose|beta-sweep ...`` (also
``python -m analogeq``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .backends.registry import BACKENDS

__all__ = ["main"]

def _default_out(cfg: dict) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg['name']}-{cfg['train']['backend']}-seed{cfg['seed']}-{stamp}"


def cmd_train(args: argparse.Namespace) -> int:
    from .runs.checkpoints import checkpoint_config, read_checkpoint
    from .runs.config import load_config, resolve_config
    from .runs.training import train

    backend = args.backend
    if args.scheduler is not None and backend is None:
        backend = "ngspice-dask"  # a scheduler address means the Dask backend
    overrides = {
        "data.dataset": args.dataset,
        "data.data_dir": args.data_dir,
        "train.backend": backend,
        "train.workers": args.workers,
        "train.scheduler": args.scheduler,
        "train.sweep_points": args.sweep_points,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
        "seed": args.seed,
    }
    if args.resume:
        for given, what in ((args.config, f"CONFIG ({args.config})"),
                            (args.out, f"--out ({args.out})")):
            if given:
                print(f"error: --resume {args.resume} continues the run with the config stored "
                      f"in its checkpoint, in its own folder: do not also give {what}",
                      file=sys.stderr)
                return 2
        run_dir = Path(args.resume)
        ckpt = run_dir / "checkpoint.npz"
        if not ckpt.exists():
            print(f"error: {ckpt} does not exist: nothing to resume", file=sys.stderr)
            return 2
        _, meta = read_checkpoint(ckpt)
        cfg = resolve_config(checkpoint_config(meta, ckpt), overrides)
        result = train(cfg, run_dir, resume=True, progress=not args.quiet)
    else:
        if not args.config:
            print("error: give a CONFIG.toml (or --resume RUN_DIR)", file=sys.stderr)
            return 2
        cfg = load_config(args.config, overrides)
        run_dir = Path(args.out) if args.out else _default_out(cfg)
        result = train(cfg, run_dir, config_path=args.config, progress=not args.quiet)
    print(f"run folder: {result.run_dir} ({result.epochs} epochs, {result.seconds:.1f} s)")
    print(f"test accuracy: {100 * result.test_accuracy:.2f}%")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train the bundled default (digits_ffebm) on ngspice."""
    from .runs.config import EXAMPLE_CONFIGS

    ns = argparse.Namespace(
        config=str(EXAMPLE_CONFIGS / "digits_ffebm.toml"), dataset=None, data_dir=None,
        backend=args.backend, epochs=args.epochs, batch_size=None, seed=None, out=args.out,
        resume=None, workers=None, scheduler=None, sweep_points=None,
        quiet=False,
    )
    print("analogeq demo: a hybrid digital/analog network (digital linear layer -> DAC -> "
          "resistive diode network solved by ngspice -> ADC -> digital readout) learns the "
          "8x8 digits with backpropagation chained to Equilibrium Propagation.")
    return cmd_train(ns)


def cmd_beta_sweep(args: argparse.Namespace) -> int:
    from .runs.experiments import beta_sweep

    beta_sweep(out=args.out, sizes=tuple(int(s) for s in args.sizes.split(",")))
    return 0


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from .runs.gradcheck import gradcheck

    result = gradcheck(args.source, split=args.split, backend=args.backend,
                       batch_size=args.batch_size, seed=args.seed, beta=args.beta,
                       nudge_current_A=args.nudge_current, out=args.out)
    print(result.table, end="")
    out = result.out_dir
    print(f"wrote {out / 'gradcheck.md'}, {out / 'gradcheck.json'} and {out / 'gradcheck.png'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .runs.evaluation import evaluate_run
    from .runs.schema import check_backend_options

    backend = args.backend or ("ngspice-dask" if args.scheduler else "ngspice")
    check_backend_options(backend, args.workers, args.scheduler, prefix="--")
    acc, loss, seconds = evaluate_run(args.run_dir, backend=backend, progress=not args.quiet,
                                      workers=args.workers, scheduler=args.scheduler)
    print(f"evaluated {args.run_dir} on the test split with {backend} in {seconds:.1f} s "
          f"(loss {loss:.4f})")
    print(f"test accuracy: {100 * acc:.2f}%")
    return 0


def cmd_netlist(args: argparse.Namespace) -> int:
    from .runs.export import export_netlists, write_reference_netlists

    if args.reference:
        root = Path(args.out or "netlists")
        for path in write_reference_netlists(root):
            print(f"wrote {path}")
        return 0
    if not args.config or not args.out:
        print("error: give CONFIG.toml and --out DIR (or --reference)", file=sys.stderr)
        return 2
    from .runs.config import load_config

    cfg = load_config(args.config)
    for w in export_netlists(cfg, args.out, checkpoint=args.checkpoint,
                             sample_index=args.sample, backend=args.backend,
                             source=str(args.config), condensed=args.condensed):
        outs = ", ".join(f"{v:+.6f}" for v in w.outputs_V[:4])
        more = ", ..." if len(w.outputs_V) > 4 else ""
        print(f"wrote {w.path} (outputs in-process: {outs}{more} V); run: ngspice -b {w.path}")
        if w.tiles:
            folder = w.tiles[0].path.parent
            print(f"wrote {len(w.tiles)} tile netlists of {w.block} in {folder}/ (ports held at "
                  f"the block's solved voltages); run e.g.: ngspice -b {w.tiles[0].path}")
    print(f"wrote {Path(args.out) / 'README'} (what each file is, node names, units)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .runs.config import load_config
    from .runs.sweep import default_out, format_table, parse_values, run_sweep

    cfg = load_config(args.config, {"train.backend": args.backend, "train.epochs": args.epochs})
    values = parse_values(args.values)
    out = Path(args.out) if args.out else default_out(cfg, args.param)
    points = run_sweep(cfg, args.param, values, seeds=args.seeds, out_dir=out,
                       workers=args.workers, progress=not args.quiet)
    print(format_table(args.param, values, points))
    print(f"wrote {out / 'sweep.csv'} and {out / 'sweep.png'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .runs.report import report

    print(report(args.run_dir, backend=args.backend), end="")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from .runs.diagnose import diagnose

    if args.samples < 1:
        print("error: --samples must be >= 1", file=sys.stderr)
        return 2
    diag, out = diagnose(args.source, samples=args.samples, backend=args.backend,
                         out_dir=args.out, progress=not args.quiet)
    print(diag.table(), end="")
    print(f"wrote {out / 'diagnose.md'} and {out / 'diagnose.png'}")
    return 0


def cmd_splitting(args: argparse.Namespace) -> int:
    from .runs.config import EXAMPLE_CONFIGS
    from .runs.experiments import splitting

    if args.config is None:
        args.config = str(EXAMPLE_CONFIGS / "splitting.toml")

    splitting(args.config, tuple(int(s) for s in args.splits.split(",")), backend=args.backend,
              epochs=args.epochs, seed=args.seed)
    return 0


def cmd_baselines(args: argparse.Namespace) -> int:
    from .runs.experiments import baselines

    table = baselines(args.dataset, args.data_dir, hidden=args.hidden, seed=args.seed,
                      limit_train=args.limit_train)
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="analogeq", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an ff-EBM from a TOML config")
    t.add_argument("config", nargs="?", help="CONFIG.toml (see examples/configs)")
    t.add_argument("--dataset", help="override data.dataset (digits, fashion-mnist, mnist)")
    t.add_argument("--data-dir", help="override data.data_dir (directory of IDX files)")
    t.add_argument("--backend", choices=BACKENDS, help="override train.backend")
    t.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of --backend ngspice-parallel (train.workers)")
    t.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the ngspice solves on this Dask scheduler, e.g. tcp://host:8786 "
                   "(train.scheduler; implies --backend ngspice-dask)")
    t.add_argument("--sweep-points", type=int, metavar="P",
                   help="solve batches on ngspice as sweeps of P points (a multiple of 6): "
                   "results then do not depend on the number of workers (train.sweep_points)")
    t.add_argument("--epochs", type=int, help="override train.epochs")
    t.add_argument("--batch-size", type=int, help="override train.batch_size")
    t.add_argument("--seed", type=int, help="override seed")
    t.add_argument("--out", help="run folder (default runs/NAME-BACKEND-seedS-TIME)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.set_defaults(func=cmd_train)

    d = sub.add_parser("demo", help="train the bundled default (digits) on ngspice")
    d.add_argument("--backend", choices=["ngspice", "numpy"], default=None)
    d.add_argument("--epochs", type=int, default=None)
    d.add_argument("--out", default=None)
    d.set_defaults(func=cmd_demo)

    b = sub.add_parser("beta-sweep", help="EP error versus nudge strength, on ngspice")
    b.add_argument("--sizes", default="64,32,10", help="block layer sizes, comma-separated")
    b.add_argument("--out", default=None, help="write the table (markdown) here")
    b.set_defaults(func=cmd_beta_sweep)

    n = sub.add_parser(
        "netlist", help="write one standalone .cir per analog block (and per tile)",
        description="Write one standalone netlist per analog block, <block>.cir, and for "
        "blocks on crossbar tiles (tile_rows, tile_cols, wire_resistance_ohm) one per tile, "
        "<block>_tiles/<tile>.cir, with its ports held at the voltages of the whole block's "
        "in-process solution; plus a README. `ngspice -b FILE` runs each: a block prints "
        "its outputs (V), a tile its wire-node voltages (V) and port currents (A).")
    n.add_argument("config", nargs="?", help="CONFIG.toml")
    n.add_argument("--checkpoint", metavar="RUN_DIR", help="use a run's trained conductances")
    n.add_argument("--out", help="output directory")
    n.add_argument("--sample", type=int, default=0,
                   help="index (>= 0) of the test sample giving the inputs")
    n.add_argument("--backend", choices=["ngspice", "numpy"], default="numpy",
                   help="in-process solver of the outputs printed beside each file and of "
                   "the tiles' port voltages")
    n.add_argument("--condensed", action="store_true",
                   help="also write <block>_condensed.cir: the Norton-folded form the ngspice "
                   "backend solves (input and bias-rail nodes folded into the free nodes)")
    n.add_argument("--reference", action="store_true",
                   help="regenerate the reference netlists in netlists/ (make netlists)")
    n.set_defaults(func=cmd_netlist)

    r = sub.add_parser("report", help="per-training-step energy/time/conversion table of a run")
    r.add_argument("run_dir", metavar="RUN_DIR|CONFIG",
                   help="a run folder (its trained checkpoint), or a CONFIG.toml (the model "
                        "at its initial conductances)")
    r.add_argument("--backend", default="ngspice", choices=("ngspice", "numpy"),
                   help="solver of the free phases (settling transients always use ngspice)")
    r.set_defaults(func=cmd_report)

    g = sub.add_parser(
        "diagnose", help="do the hidden units clamp? clamp states, voltages, device bounds",
        description="Free phases of every analog layer on test images: per hidden layer the "
        "fraction of samples in which each unit's clamp diode is off / soft / on (diode "
        "current in knee currents G N V_T: < 0.1, 0.1..10, >= 10), the hidden voltage range, "
        "and per crossbar the fraction of devices at g_min / g_max. Writes diagnose.md and "
        "diagnose.png (see analogeq.runs.diagnose).")
    g.add_argument("source", metavar="RUN_DIR|CONFIG",
                   help="a run folder (trained checkpoint) or a config (initial model)")
    g.add_argument("--samples", type=int, default=256, help="test images (stratified head)")
    g.add_argument("--backend", choices=["numpy", "ngspice"], default="numpy")
    g.add_argument("--out", default=None,
                   help="output folder (default: the run folder, or diagnose-<name>)")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_diagnose)

    e = sub.add_parser("evaluate", help="re-measure a run's test accuracy with a backend")
    e.add_argument("run_dir")
    e.add_argument("--backend", choices=BACKENDS, default=None,
                   help="solver of the analog blocks (default ngspice)")
    e.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of --backend ngspice-parallel")
    e.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler address (implies --backend ngspice-dask)")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    g = sub.add_parser(
        "gradcheck", help="per-array EP gradient vs the exact one (run folder or config)",
        description="Static gradient analysis: on one batch of training samples, compute "
        "the model gradient with EP in every analog block (on --backend) and BP in the "
        "digital layers, and the exact gradient (implicit differentiation in the blocks, "
        "NumPy); per parameter array (crossbars R0..RL of every block, digital weights) "
        "print the cosine similarity, the relative error ||g_ep - g_exact|| / ||g_exact|| "
        "and the norms; write gradcheck.md, gradcheck.json and gradcheck.png.")
    g.add_argument("source", metavar="RUN_DIR|CONFIG",
                   help="a run folder (its trained checkpoint.npz) or a config .toml "
                   "(a fresh model)")
    g.add_argument("--backend", choices=["numpy", "ngspice"], default=None,
                   help="solver of the EP pass (default: the config's train.backend)")
    g.add_argument("--split", type=int, default=None, metavar="N",
                   help="with a config: split its deep resistive layer into N blocks first "
                   "(as `analogeq splitting` does)")
    g.add_argument("--batch-size", type=int, default=64,
                   help="samples of the training split in the batch (default 64)")
    g.add_argument("--seed", type=int, default=None,
                   help="seed of the batch draw (default: the config's seed)")
    nudge = g.add_mutually_exclusive_group()
    nudge.add_argument("--beta", type=float, default=None,
                       help="EP nudge strength of every block, in amperes per unit of delta "
                       "(default: each block's config beta, else its default rule)")
    nudge.add_argument("--nudge-current", type=float, default=None, metavar="AMPERES",
                       help="largest nudge current of the default rule, beta = AMPERES / "
                       "max|delta| (default: the block's nudge_current_A)")
    g.add_argument("--out", default=None,
                   help="output folder (default: the run folder, or runs/gradcheck-NAME "
                   "for a config)")
    g.set_defaults(func=cmd_gradcheck)

    w = sub.add_parser("sweep", help="train/evaluate across values of one parameter")
    w.add_argument("config", help="CONFIG.toml")
    w.add_argument("--param", required=True,
                   help="e.g. adc.bits, dac.bits, resistive.device.read_noise_rel, train.lr")
    w.add_argument("--values", required=True, help="comma-separated, e.g. 2,4,6,8 or none")
    w.add_argument("--seeds", type=int, default=1, help="runs per value (error bars)")
    w.add_argument("--workers", type=int, default=None, help="parallel processes")
    w.add_argument("--backend", choices=["ngspice", "numpy"], default=None)
    w.add_argument("--epochs", type=int, default=None)
    w.add_argument("--out", default=None)
    w.add_argument("--quiet", action="store_true")
    w.set_defaults(func=cmd_sweep)

    s = sub.add_parser("splitting", help="train one deep network split into 1, 2, 4 blocks")
    s.add_argument("config", nargs="?", default=None,
                   help="config of the deep model (default: the bundled splitting.toml)")
    s.add_argument("--splits", default="1,2,4")
    s.add_argument("--backend", choices=["ngspice", "numpy"], default=None)
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--seed", type=int, default=None)
    s.set_defaults(func=cmd_splitting)

    b = sub.add_parser("baselines", help="digital reference points on the same pixels: "
                       "logistic regression and a one-hidden-layer MLP (scikit-learn)")
    b.add_argument("--dataset", default="fashion-mnist")
    b.add_argument("--data-dir", default=None)
    b.add_argument("--hidden", type=int, default=100, help="MLP hidden units")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--limit-train", type=int, default=None)
    b.add_argument("--out", default=None, help="also write the table to this file")
    b.set_defaults(func=cmd_baselines)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``analogeq`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit
    code (2 on an analogeq error, printed as one ``error:`` line)."""
    args = build_parser().parse_args(argv)
    from .errors import AnalogeqError

    try:
        return int(args.func(args) or 0)
    except (AnalogeqError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
