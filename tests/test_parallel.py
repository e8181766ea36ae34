"""Parallel ngspice backends: same answers as one process, and loud, bounded failures.

Every test runs real ngspice in spawned worker processes. Crashes and hangs are injected
in the worker with the test-only ``ANALOGEQ_PARALLEL_FAULT`` hook.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from analogeq import (
    Circuit,
    Conductance,
    CurrentSource,
    FloatingNodeError,
    InvalidValueError,
    NetlistParseError,
    ResistiveBlock,
    VoltageSource,
    WorkerCrashedError,
)
from analogeq.backends.dask_backend import DaskNgspiceBackend
from analogeq.backends.pool import FAULT_ENV, ParallelNgspiceBackend, chunk_bounds

LOGGER = "analogeq.backends.pool"
SIZES = (16, 12, 4)


@pytest.fixture(scope="module")
def block():
    return ResistiveBlock(SIZES, seed=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return rng.uniform(-1, 1, (32, SIZES[0])), rng.uniform(-1, 1, (32, SIZES[-1]))


@pytest.fixture(scope="module")
def par(ngspice):  # noqa: ARG001 - ngspice fails the module loudly if libngspice is missing
    with ParallelNgspiceBackend(2) as be:
        yield be


@pytest.fixture(scope="module")
def reference(block, data):
    u, delta = data
    return block.ep_gradients(u, delta, backend="ngspice"), block.free(u, backend="ngspice")


def _alive(pid: int) -> bool:
    """True if ``pid`` exists, zombies included (a reaped child has no /proc entry)."""
    return os.path.exists(f"/proc/{pid}")


def _assert_free_matches(state, ref_state) -> None:
    # the first point of each chunk starts cold instead of warm: equal within tolerances
    np.testing.assert_allclose(
        state.solution.voltages_V, ref_state.solution.voltages_V, rtol=0, atol=1e-8
    )
    # (the clamp rails carry tens of uA: their currents agree to ngspice's reltol 1e-8)
    np.testing.assert_allclose(
        state.solution.currents_A, ref_state.solution.currents_A, rtol=1e-8, atol=1e-14
    )


def test_chunk_bounds_are_contiguous_aligned_and_cover_the_batch():
    assert chunk_bounds(96, 2, 6) == [(0, 48), (48, 96)]
    assert chunk_bounds(10, 4, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert chunk_bounds(5, 4, 6) == [(0, 5)]
    for batch in range(1, 40):
        for n in (1, 2, 3, 5):
            b = chunk_bounds(batch, n, 3)
            assert b[0][0] == 0 and b[-1][1] == batch and len(b) <= n
            inner = [e0 for (_, e0), (s1, _) in zip(b[:-1], b[1:], strict=True) if s1 == e0]
            assert len(inner) == len(b) - 1 and all(e % 3 == 0 for e in inner)


def test_small_batches_use_fewer_workers():
    be = ParallelNgspiceBackend(4, min_samples_per_worker=8, align=1)
    assert be.plan(7) == [(0, 7)]
    assert be.plan(16) == [(0, 8), (8, 16)]
    assert len(be.plan(1000)) == 4
    assert be.worker_pids() == [None] * 4  # nothing started until the first solve
    be.close()


def test_ep_gradients_match_single_process(par, block, data, reference):
    u, delta = data
    ref, ref_free = reference
    got = block.ep_gradients(u, delta, backend=par)
    assert len(par.plan(3 * len(u))) == 2  # really split across the two workers
    for g, r in zip(got.conductances, ref.conductances, strict=True):
        cos = float((g * r).sum() / (np.linalg.norm(g) * np.linalg.norm(r)))
        assert cos >= 0.9999999
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-6 * np.abs(r).max())
    np.testing.assert_allclose(got.inputs, ref.inputs, rtol=0, atol=1e-6 * np.abs(ref.inputs).max())
    np.testing.assert_allclose(got.outputs, ref.outputs, rtol=0, atol=1e-8)
    _assert_free_matches(block.free(u, backend=par), ref_free)


def test_crashed_worker_is_logged_and_its_chunk_retried(
    par, block, data, reference, monkeypatch, caplog, tmp_path
):
    u, _ = data
    block.free(u, backend=par)  # both workers up
    pids = par.worker_pids()
    monkeypatch.setenv(FAULT_ENV, f"segv@{tmp_path / 'fired'}")  # first attempt only
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        state = block.free(u, backend=par)
    _assert_free_matches(state, reference[1])
    [rec] = [r for r in caplog.records if r.name == LOGGER]
    msg = rec.getMessage()
    assert block.circuit().title in msg and "SIGSEGV" in msg and "retrying" in msg
    assert sum(p not in pids for p in par.worker_pids()) == 1  # one fresh process
    assert not any(_alive(p) for p in pids if p not in par.worker_pids())  # reaped


def test_double_crash_raises_worker_crashed_error(par, block, data, monkeypatch, caplog):
    u, _ = data
    monkeypatch.setenv(FAULT_ENV, "exit")  # every attempt dies
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        with pytest.raises(WorkerCrashedError, match=r"samples \[0, 4\) of 4") as info:
            block.free(u[:4], backend=par)  # small batch: one chunk, one worker
    err = info.value
    assert err.circuit_title == block.circuit().title and err.circuit_title in str(err)
    assert err.sample_range == (0, 4) and len(err.failures) == 2
    assert all("exited with code 3" in f for f in err.failures)
    assert len([r for r in caplog.records if r.name == LOGGER]) == 1  # the first failure
    monkeypatch.delenv(FAULT_ENV)
    assert block.free(u[:4], backend=par).outputs.shape == (4, SIZES[-1])  # recovers


def test_hung_worker_times_out_and_is_retried_then_fails(
    par, block, data, reference, monkeypatch, caplog, tmp_path
):
    u, _ = data
    monkeypatch.setattr(par, "timeout_s", 2.0)
    monkeypatch.setenv(FAULT_ENV, f"sleep:600@{tmp_path / 'fired'}")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        state = block.free(u, backend=par)
    _assert_free_matches(state, reference[1])
    [rec] = [r for r in caplog.records if r.name == LOGGER]
    assert "timed out" in rec.getMessage() and block.circuit().title in rec.getMessage()

    monkeypatch.setenv(FAULT_ENV, "sleep:600")
    with pytest.raises(WorkerCrashedError, match="timed out") as info:
        block.free(u[:4], backend=par)
    assert info.value.sample_range == (0, 4)


def test_simulation_error_in_worker_keeps_class_and_messages(par, monkeypatch):
    # the fault hook makes each worker's own ngspice reject a netlist (a 'nan' value)
    values = {"V1": np.linspace(0.0, 1.0, 32)}
    fixed = Circuit("divider").add(
        VoltageSource("V1", "a", "0", 1.0),
        Conductance("R1", "a", "b", 1e-3),
        Conductance("R2", "b", "0", 1e-3),
    )
    par.solve(fixed, values)  # both workers up
    pids = par.worker_pids()
    assert all(pids)
    monkeypatch.setenv(FAULT_ENV, "ngspice")
    with pytest.raises(NetlistParseError, match="rejected") as info:
        par.solve(fixed, values)
    assert info.value.circuit_title == "tiny conductance"
    assert any("nan" in m for m in info.value.messages)
    monkeypatch.delenv(FAULT_ENV)
    assert par.worker_pids() == pids  # not retried, no process replaced
    ok = par.solve(fixed, values)
    np.testing.assert_allclose(ok.v("b"), values["V1"] / 2, rtol=0, atol=1e-9)


def test_invalid_circuits_fail_in_the_parent_before_dispatch():
    be = ParallelNgspiceBackend(2)
    floating = Circuit("island").add(
        VoltageSource("V1", "a", "0", 1.0),
        Conductance("R1", "a", "0", 1e-3),
        CurrentSource("I1", "0", "b", 1e-3),
    )
    with pytest.raises(FloatingNodeError):
        be.solve(floating, {"V1": np.ones(32)})
    good = Circuit("divider").add(
        VoltageSource("V1", "a", "0", 1.0), Conductance("R1", "a", "0", 1e-3)
    )
    with pytest.raises(InvalidValueError, match="finite"):
        be.solve(good, {"V1": np.array([1.0, np.nan])})
    assert be.worker_pids() == [None, None]  # no worker was ever started
    be.close()
    with pytest.raises(RuntimeError, match="closed"):
        be.solve(good, {"V1": np.ones(2)})


def test_close_reaps_workers(block, data):
    u, _ = data
    be = ParallelNgspiceBackend(2, min_samples_per_worker=1)
    block.free(u[:12], backend=be)  # two chunks of 6
    pids = be.worker_pids()
    assert all(pids)
    be.close()
    be.close()
    assert not any(_alive(p) for p in pids)


def test_workers_exit_cleanly_at_interpreter_exit(tmp_path):
    """No close(): the finalizer stops the workers; no warning, no leftover process."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np
        from analogeq.backends.pool import ParallelNgspiceBackend
        from analogeq.blocks import ResistiveBlock

        if __name__ == "__main__":
            be = ParallelNgspiceBackend(2, min_samples_per_worker=1)
            b = ResistiveBlock({SIZES})
            b.free(np.zeros((12, {SIZES[0]})), backend=be)
            print(*be.worker_pids())
    """))
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(script)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2 and not any(_alive(p) for p in pids)


def test_dask_backend_missing_dask_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r"pip install -e \.\[dask\]"):
        DaskNgspiceBackend()


def test_dask_local_cluster_matches_single_process(block, data, reference):
    distributed = pytest.importorskip("dask.distributed")  # an optional extra
    u, delta = data
    ref, ref_free = reference
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        be = DaskNgspiceBackend(client=client)
        got = block.ep_gradients(u, delta, backend=be)
        free = block.free(u, backend=be)
        be.close()  # a given client is left open
        assert client.status == "running"
    for g, r in zip(got.conductances, ref.conductances, strict=True):
        cos = float((g * r).sum() / (np.linalg.norm(g) * np.linalg.norm(r)))
        assert cos >= 0.9999999
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-6 * np.abs(r).max())
    _assert_free_matches(free, ref_free)


def test_fixed_sweep_length_makes_workers_bitwise_equal_to_one_process(ngspice):  # noqa: ARG001
    from analogeq import SolverOptions
    from analogeq.backends.ngspice import NgspiceBackend

    opts = SolverOptions(sweep_points=24)  # 24 samples x 3 EP phases = 72 points: 3 sweeps
    blk = ResistiveBlock((64, 64, 10), seed=1, options=opts)
    rng = np.random.default_rng(3)
    u, delta = rng.uniform(-1, 1, (24, 64)), rng.uniform(-1, 1, (24, 10))
    one = blk.ep_gradients(u, delta, backend=NgspiceBackend(opts))
    grads = {}
    with ParallelNgspiceBackend(2, options=opts) as be:
        assert be.plan(72) == [(0, 24), (24, 72)]  # boundaries on multiples of 24 points
        grads["2 workers"] = blk.ep_gradients(u, delta, backend=be)
    distributed = pytest.importorskip("dask.distributed")  # an optional extra
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        be = DaskNgspiceBackend(client=client, options=opts)
        grads["dask"] = blk.ep_gradients(u, delta, backend=be)
    for got in grads.values():
        for g, r in zip(got.conductances, one.conductances, strict=True):
            np.testing.assert_array_equal(g, r)
        np.testing.assert_array_equal(got.inputs, one.inputs)
        np.testing.assert_array_equal(got.outputs, one.outputs)
    # sweeps of 24 points agree with one warm-started sweep within the solver tolerances
    ref = blk.ep_gradients(u, delta, backend=NgspiceBackend())
    for g, r in zip(one.conductances, ref.conductances, strict=True):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-4 * np.abs(r).max())


def test_sweep_points_must_keep_ep_phase_groups_whole():
    from analogeq import SolverOptions

    for bad in (0, 4, 10, 6.0, True):
        with pytest.raises(ValueError, match="multiple of 6"):
            SolverOptions(sweep_points=bad)
