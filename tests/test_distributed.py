"""``fit`` / ``evaluate`` / ``predict`` / checkpoints / ``save_keras`` over two real local
processes on JAX's distributed runtime (2 virtual CPU devices each), against one process
with 4 devices on the same data: equal weights and histories, a resume in fresh processes,
a resume in one process of the two processes' checkpoint, one process killed mid-run.

The processes are ``tests/dist_worker.py``; every launch has a timeout and its process group
is killed in a ``finally``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import jaxlstm
from jaxlstm.train import DistributedError, initialize, process_rows

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from dist_worker import HEARTBEAT  # noqa: E402

LIMIT = 240  # seconds: no launch may take longer (a hang fails the test, never blocks it)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(scenario, out: Path, processes: int, devices: int) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    procs = []
    for pid in range(processes):
        multi = [str(port), str(pid), str(processes)] if processes > 1 else []
        log = open(out / f"{scenario}_{pid}.log", "w")
        procs.append(
            subprocess.Popen(
                [sys.executable, str(HERE / "dist_worker.py"), scenario, str(out), *multi],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group, killed whole below
            )
        )
        log.close()
    return procs


def finish(procs) -> list[int]:
    codes = []
    deadline = time.monotonic() + LIMIT
    try:
        for p in procs:
            codes.append(p.wait(timeout=max(deadline - time.monotonic(), 1)))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return codes


def tail(out: Path, name: str) -> str:
    text = (out / f"{name}.log").read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("    @"))[-3000:]


def read(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def max_diff(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(a, b, strict=True)
    )


def history_diff(a, b) -> float:
    """The largest difference of logged values (wall-clock seconds aside) of two runs."""
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    return max(abs(r[k] - s[k]) for r, s in zip(a, b, strict=True) for k in r if k != "seconds")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two processes fine-tune (process 1 then dies in a resumed run) while one 4-device
    process runs the reference; then two fresh processes resume the pair's checkpoint, and
    the reference resumes a copy of it."""
    root = tmp_path_factory.mktemp("dist")
    pair, ref = root / "pair", root / "ref"
    pair.mkdir()
    ref.mkdir()
    t_end = {}
    lonely_code = (  # a process whose peer never comes, beside the rest
        "from jaxlstm.train import initialize\n"
        f"initialize('127.0.0.1:{free_port()}', 2, 1, initialization_timeout=2)\n"
        "print('started without its peer')\n"
    )
    with open(root / "lonely.log", "w") as log:
        lonely = subprocess.Popen(
            [sys.executable, "-c", lonely_code],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
            start_new_session=True,
        )
    reference = launch("reference", ref, 1, 4)
    try:
        procs = launch("tune", pair, 2, 2)
        try:
            deadline = time.monotonic() + LIMIT
            while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
                for pid, p in enumerate(procs):
                    if p.poll() is not None and pid not in t_end:
                        t_end[pid] = time.time()
                time.sleep(0.05)
        finally:
            tune_codes = finish(procs)
        for pid in range(len(procs)):
            t_end.setdefault(pid, time.time())
        shutil.copytree(pair / "ckpt_a", ref / "ckpt_a_copy")
        (ref / "ckpt_a_copy.ready").write_text("")
        codes = finish(launch("resume", pair, 2, 2))
    finally:
        ref_codes = finish(reference)
        lonely_codes = finish([lonely])
    return {
        "lonely": (lonely_codes[0], (root / "lonely.log").read_text()),
        "pair": pair,
        "ref": ref,
        "tune_codes": tune_codes,
        "codes": codes + ref_codes,
        "t_end": t_end,
        "died_at": float((pair / "died_at").read_text()) if (pair / "died_at").exists() else None,
    }


def test_two_processes_fine_tune_evaluate_predict_as_one_four_device_process(runs):
    pair, ref = runs["pair"], runs["ref"]
    assert (pair / "tune_0.json").exists(), tail(pair, "tune_0")
    assert runs["codes"][2] == 0, tail(ref, "reference_0")
    a, b, r = read(pair, "tune_0"), read(pair, "tune_1"), read(ref, "reference_0")
    assert (a["devices"], a["processes"], r["devices"], r["processes"]) == (4, 2, 4, 1)
    assert a["mesh"] == b["mesh"] == r["mesh"] == 4  # the global mesh spans both processes
    assert (a["primary"], b["primary"], r["primary"]) == (True, False, True)
    for key in ("tune", "evaluate", "predict", "saved_seen"):
        assert a[key] == b[key], key  # every process: the same History (seconds too), outputs
    diffs = {
        "weights": max_diff(a["tune"]["weights"], r["tune"]["weights"]),
        "history": history_diff(a["tune"]["history"], r["tune"]["history"]),
        "evaluate": max(abs(a["evaluate"][k] - r["evaluate"][k]) for k in r["evaluate"]),
        "predict": max_diff(a["predict"], r["predict"]),
    }
    print("2 processes x 2 devices vs 1 process x 4, max abs diff:", diffs)
    assert max(diffs.values()) < 1e-5
    assert "val_loss" in a["tune"]["history"][-1] and len(a["tune"]["history"]) == 2
    # an iterable of batches: each process fed its rows and got their outputs
    rows = [a["predict_rows"], b["predict_rows"]]
    assert [rows[0][:2], rows[1][:2]] == [[0, 8], [8, 16]]
    assert a["uneven"].startswith("a global batch of 6 does not split over the mesh's 4")
    assert a["refused"][0].startswith("mesh has 2 devices but the 2 processes have 4")
    assert a["refused"][1].startswith(
        "the processes disagree on the number of training examples: [64, 48]"
    )
    assert (
        "ckpt_a holds a checkpoint (1) or not (0): [1, 0] (by process); checkpoint_dir"
        in (a["refused"][2])
    )
    assert b["refused"][2] == a["refused"][2].replace("ckpt_a", "ckpt_elsewhere")
    whole = np.asarray(r["predict"]).reshape(5, 16, -1)
    for start, stop, own in rows:
        got = np.asarray(own).reshape(5, stop - start, -1)
        assert float(np.max(np.abs(got - whole[:, start:stop]))) < 1e-5
    # only process 0 logs and shows progress
    assert len((pair / "log_0.jsonl").read_text().splitlines()) == 2
    assert not (pair / "log_1.jsonl").exists()
    assert "epoch 2/2" in (pair / "progress_0.txt").read_text()
    assert (pair / "progress_1.txt").read_text() == ""


def test_save_keras_writes_one_file_with_the_fine_tuned_numbers(runs):
    pair = runs["pair"]
    a = read(pair, "tune_0")
    assert a["saved_seen"] is True  # process 1 returned from save_keras after the write
    assert [p.name for p in pair.glob("*.keras*")] == ["tuned.keras"]  # no stray temp file
    model = jaxlstm.load_keras(pair / "tuned.keras")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 8, 3)).astype("float32")
    assert max_diff([np.asarray(model(x))], [a["predict"]]) < 1e-5


def test_resume_in_fresh_processes_and_in_one_process_equals_the_unbroken_run(runs):
    pair, ref = runs["pair"], runs["ref"]
    assert runs["codes"][:2] == [0, 0], tail(pair, "resume_0") + tail(pair, "resume_1")
    a, b, r = read(pair, "resume_0"), read(pair, "resume_1"), read(ref, "reference_0")
    assert a["resume"] == b["resume"]
    assert len(a["resume"]["history"]) == 3  # epochs 1-2 from the checkpoint, then epoch 3
    diffs = {  # the unbroken 3-epoch run: one process, 4 devices, its own checkpoint
        "fresh pair weights": max_diff(a["resume"]["weights"], r["resume"]["weights"]),
        "fresh pair history": history_diff(a["resume"]["history"], r["resume"]["history"]),
        # the two processes' checkpoint, restored by one process on its 4 devices
        "resharded weights": max_diff(r["resharded"]["weights"], r["resume"]["weights"]),
        "resharded history": history_diff(r["resharded"]["history"], r["resume"]["history"]),
    }
    print("resumed vs the reference, max abs diff:", diffs)
    assert max(diffs.values()) < 1e-5


def test_a_killed_process_ends_its_peer_within_the_heartbeat_bound(runs):
    pair = runs["pair"]
    assert runs["died_at"] is not None, tail(pair, "tune_1")
    assert runs["tune_codes"][1] == 17  # the worker's own exit, mid-epoch
    assert runs["tune_codes"][0] != 0 and not (pair / "survived_0").exists()
    assert "another task died" in tail(pair, "tune_0")  # JAX's coordination service
    waited = runs["t_end"][0] - runs["died_at"]
    print(f"survivor ended {waited:.1f} s after its peer died (heartbeat {HEARTBEAT} s)")
    assert waited < LIMIT
    # its checkpoint (epoch 2) stayed whole: the resumed runs above restored it


def test_a_peer_that_never_arrives_ends_the_run_after_the_initialization_timeout(runs):
    code, out = runs["lonely"]
    assert code != 0 and "started without its peer" not in out
    assert "DEADLINE_EXCEEDED" in out and "RegisterTask" in out  # JAX's initialization timeout


def test_initialize_refuses_incomplete_arguments_before_starting_anything():
    with pytest.raises(DistributedError, match=r"pass all three \(--coordinator HOST:PORT"):
        initialize("127.0.0.1:1234")
    with pytest.raises(DistributedError, match=r"process_id=2 for num_processes=2; expected"):
        initialize("127.0.0.1:1234", 2, 2)
    assert process_rows(8) == slice(0, 8)  # one process holds every row


def test_finetune_cli_refuses_an_incomplete_process_group_before_starting_jax(capsys):
    from jaxlstm._src.cli import main

    argv = ["finetune", "--config", "airline_finetune", "--coordinator", "127.0.0.1:1"]
    assert main(argv) == 2
    assert "pass all three (--coordinator HOST:PORT" in capsys.readouterr().err


def test_the_cli_joins_the_processes_a_launcher_started(monkeypatch):
    from jaxlstm._src.train.distributed import launcher

    for name in ("JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert launcher() is None
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert launcher() is None  # one task: nothing to join
    monkeypatch.setenv("SLURM_NTASKS", "8")
    assert launcher() == "SLURM"
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert launcher() == "Open MPI"


@pytest.mark.slow  # two processes fine-tuning the shipped airline config: ~1 min
def test_finetune_cli_over_two_processes(tmp_path):
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        "JAX_PLATFORMS": "cpu",
        "JAXLSTM_CACHE_DIR": str(tmp_path / "xla_cache"),
    }
    port = free_port()
    procs = []
    try:
        for pid in range(2):
            cmd = [sys.executable, "-m", "jaxlstm", "finetune", "--config", "airline_finetune"]
            cmd += ["--out", str(tmp_path), "--epochs", "2", "--coordinator", f"127.0.0.1:{port}"]
            cmd += ["--num-processes", "2", "--process-id", str(pid), "--heartbeat-timeout", "10"]
            procs.append(
                subprocess.Popen(
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                    start_new_session=True,
                )
            )
        outs = [p.communicate(timeout=LIMIT)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "validation loss:" in outs[0] and "validation loss:" not in outs[1]
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2
    assert (tmp_path / "airline_finetuned.keras").exists()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best", "latest"]


@pytest.mark.slow  # four processes and a reference: ~1-2 min
def test_four_processes_of_one_device_equal_one_process_of_four(tmp_path):
    pair, ref = tmp_path / "four", tmp_path / "ref"
    pair.mkdir()
    ref.mkdir()
    reference = launch("reference", ref, 1, 4)
    try:
        codes = finish(launch("tune_only", pair, 4, 1))
        assert codes == [0, 0, 0, 0], tail(pair, "tune_only_0")
        shutil.copytree(pair / "ckpt_a", ref / "ckpt_a_copy")
        (ref / "ckpt_a_copy.ready").write_text("")
    finally:
        ref_codes = finish(reference)
    assert ref_codes == [0], tail(ref, "reference_0")
    runs = [read(pair, f"tune_{k}") for k in range(4)]
    r = read(ref, "reference_0")
    assert all(run["tune"] == runs[0]["tune"] for run in runs)
    assert [run["predict_rows"][:2] for run in runs] == [[0, 4], [4, 8], [8, 12], [12, 16]]
    assert max_diff(runs[0]["tune"]["weights"], r["tune"]["weights"]) < 1e-5
    assert history_diff(runs[0]["tune"]["history"], r["tune"]["history"]) < 1e-5
    assert max_diff(runs[0]["predict"], r["predict"]) < 1e-5
    # four processes' checkpoint, resumed by one process: the unbroken run's numbers
    assert max_diff(r["resharded"]["weights"], r["resume"]["weights"]) < 1e-5


def test_predict_in_one_process_arrays_or_batches_one_or_several_outputs():
    from jaxlstm.train import predict

    model = jaxlstm.load_keras(HERE / "fixtures" / "keras2_models" / "two_outputs.h5")
    npz = np.load(HERE / "fixtures" / "keras2_models" / "two_outputs.npz")
    x, expected = npz["in0"], [npz["out0"], npz["out1"]]  # what tf.keras computed
    outs = predict(model, x, batch_size=2)  # 3 examples: batches of 2 and 1
    assert isinstance(outs, tuple) and len(outs) == 2
    assert max_diff(outs, expected) < 1e-5
    batches = predict(model, (x[i : i + 2] for i in range(0, len(x), 2)))
    assert max_diff(batches, outs) == 0.0
    with pytest.raises(jaxlstm.JaxLSTMError, match=r"disagree on the number of examples"):
        predict(model, [x, x[:1]])
