"""Killed writers: what `atomic_path` leaves behind, and what the next writer of the same target does with it.

The end-to-end check, a real Snakemake run killed with SIGKILL and rerun, is in tests/test_workflow.py
(test_killed_run_reruns_to_the_same_results), where it reuses that module's uninterrupted run.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from blindlca.io import atomic_path, load_array, load_json, save_array, save_json

REPO = Path(__file__).resolve().parents[1]

# Writes half the rows of a (4, 3) array into `target`, says so, and waits to be killed.
WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from blindlca.io import array_writer

    with array_writer(sys.argv[1], (4, 3)) as out:
        out.write(np.ones((2, 3)))
        print("half written", flush=True)
        time.sleep(60)
    """
)


def kill_mid_write(target: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline() == "half written\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_sigkilled_writer_leaves_old_target_and_one_temporary_at_most(tmp_path):
    target = tmp_path / "features.npy"
    old = np.zeros((4, 3), np.float32)
    save_array(target, old)
    for _ in range(3):  # repeated kills: each new writer deletes the temporary the last one left
        kill_mid_write(target)
        np.testing.assert_array_equal(load_array(target), old)
        (leftover,) = hidden(tmp_path)
        assert leftover.startswith(".features.npy.") and leftover.endswith(".npy")
    new = np.arange(12, dtype=np.float32).reshape(4, 3)
    save_array(target, new)
    np.testing.assert_array_equal(load_array(target), new)
    assert os.listdir(tmp_path) == ["features.npy"]


def test_dead_temporaries_of_the_target_are_removed_and_nothing_else(tmp_path):
    dead = [".a.json.abcd_123.tmp", ".a.json.k9x2m1q0.tmp"]  # what mkstemp makes for a.json
    kept = [
        ".a.json.abcd_123.npy",  # another suffix
        ".b.json.abcd_123.tmp",  # another target
        ".xa.json.abcd_123.tmp",
        ".a.json.abc.tmp",  # not mkstemp's 8 characters
        ".a.json.ABCD_123.tmp",
        "a.json.abcd_123.tmp",  # not hidden
        "notes.txt",
    ]
    for name in dead + kept:
        (tmp_path / name).write_text("left over")
    (tmp_path / ".a.json.dir_1234.tmp").mkdir()  # a folder is never touched
    kept.append(".a.json.dir_1234.tmp")
    save_json(tmp_path / "a.json", {"x": 1})
    assert load_json(tmp_path / "a.json") == {"x": 1}
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, "a.json"])
    assert all((tmp_path / n).read_text() == "left over" for n in kept if (tmp_path / n).is_file())


def test_a_live_writers_temporary_is_kept(tmp_path):
    target = tmp_path / "a.txt"
    with atomic_path(target) as outer:
        outer.write_text("outer")
        with atomic_path(target) as inner:  # a second writer of the same target does not delete `outer`
            assert outer.read_text() == "outer"
            inner.write_text("inner")
        assert target.read_text() == "inner"
    assert target.read_text() == "outer"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_the_temporary_is_locked_while_the_block_runs(tmp_path):
    with atomic_path(tmp_path / "a.txt") as tmp:
        fd = os.open(tmp, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        tmp.write_text("x")
