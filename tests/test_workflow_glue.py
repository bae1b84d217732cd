"""Tests for the glue modules: blindlca.workflow (script entry), blindlca.io, blindlca.device."""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params

from blindlca.device import resolve_device
from blindlca.io import atomic_path, load_array, load_json, read_csv, save_array, save_json, write_csv
from blindlca.workflow import run


@pytest.fixture(autouse=True)
def _restore_global_state():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    logging.captureWarnings(False)


# --- workflow.run under Snakemake ----------------------------------------------------------------------


def _snakemake(tmp_path, *, log=True, threads=1):
    return SimpleNamespace(
        input=InputFiles(fromdict={"features": "in/f.npy", "maps": ["in/a.npy", "in/b.npy"]}),
        output=OutputFiles(fromdict={"result": str(tmp_path / "out.json")}),
        params=Params(fromdict={"k": 3, "cfg": {"x": 1}}),
        threads=threads,
        log=Log(fromdict={"log": str(tmp_path / "logs" / "step.log")}) if log else Log(),
    )


def test_run_passes_the_resources_main_names_and_hides_gpus_when_granted_none(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    smk = _snakemake(tmp_path)
    smk.resources = Params(fromdict={"gpu": 0, "batch_images": 4, "tmpdir": "/tmp"})
    seen = {}

    def main(*, features, maps, result, k, cfg, batch_images=16):
        seen["batch_images"] = batch_images

    run(main, {"snakemake": smk})
    assert seen == {"batch_images": 4}  # tmpdir and gpu are not parameters of main: not passed
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    smk.resources = Params(fromdict={"gpu": 1})
    run(main, {"snakemake": smk})
    assert seen == {"batch_images": 16} and os.environ["CUDA_VISIBLE_DEVICES"] == "0"


def test_run_under_snakemake_passes_named_arguments_and_logs(tmp_path):
    seen = {}

    def main(*, features, maps, result, k, cfg):
        seen.update(
            features=features, maps=maps, result=result, k=k, cfg=cfg, threads=torch.get_num_threads()
        )
        logging.getLogger("blindlca.test").info("hello from main")
        print("printed line")
        print("to stderr", file=sys.stderr)

    run(main, {"snakemake": _snakemake(tmp_path, threads=1), "__file__": "step.py"})
    assert seen == {
        "features": "in/f.npy",
        "maps": ["in/a.npy", "in/b.npy"],
        "result": str(tmp_path / "out.json"),
        "k": 3,
        "cfg": {"x": 1},
        "threads": 1,
    }
    text = (tmp_path / "logs" / "step.log").read_text()
    assert "hello from main" in text
    assert "printed line" in text
    assert "to stderr" in text
    assert "torch" in text  # the header line log_to writes


@pytest.mark.filterwarnings("default")
def test_run_under_snakemake_sends_warnings_to_log(tmp_path):
    def main(**_):
        warnings.warn("careful with this input", UserWarning, stacklevel=1)

    run(main, {"snakemake": _snakemake(tmp_path)})
    assert "careful with this input" in (tmp_path / "logs" / "step.log").read_text()


def test_run_under_snakemake_appends_to_log(tmp_path):
    def main(**kwargs):
        print("run", len(kwargs))

    smk = _snakemake(tmp_path)
    run(main, {"snakemake": smk})
    run(main, {"snakemake": smk})
    assert (tmp_path / "logs" / "step.log").read_text().count("run 5") == 2


def test_run_under_snakemake_threads_floor_one(tmp_path):
    got = []
    run(
        lambda **_: got.append(torch.get_num_threads()),
        {"snakemake": _snakemake(tmp_path, log=False, threads=0)},
    )
    assert got == [1]


def test_run_under_snakemake_without_log(tmp_path):
    called = []
    run(lambda **kw: called.append(sorted(kw)), {"snakemake": _snakemake(tmp_path, log=False)})
    assert called == [["cfg", "features", "k", "maps", "result"]]
    assert not (tmp_path / "logs").exists()


def test_run_under_snakemake_logs_failure_and_reraises(tmp_path):
    def main(**_):
        raise RuntimeError("boom in step")

    with pytest.raises(RuntimeError, match="boom in step"):
        run(main, {"snakemake": _snakemake(tmp_path)})
    text = (tmp_path / "logs" / "step.log").read_text()
    assert "step failed" in text
    assert "boom in step" in text
    assert "Traceback" in text


# --- workflow.run from the command line ----------------------------------------------------------------


def _cli_main(*, a, b, c, d=5):
    _cli_main.got = {"a": a, "b": b, "c": c, "d": d}


def test_run_cli_parses_json_or_plain_strings(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["step.py", "--a", "3", "--b", '{"x": 1}', "--c", "path/x.npy"])
    run(_cli_main, {"__file__": "step.py"})
    assert _cli_main.got == {"a": 3, "b": {"x": 1}, "c": "path/x.npy", "d": 5}
    assert isinstance(_cli_main.got["a"], int)


def test_run_cli_overrides_default_and_threads(monkeypatch):
    argv = ["step.py", "--a", "[1, 2]", "--b", "true", "--c", "null", "--d", "2.5", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    run(_cli_main, {"__file__": "step.py"})
    assert _cli_main.got == {"a": [1, 2], "b": True, "c": None, "d": 2.5}
    assert torch.get_num_threads() == 1


def test_run_cli_logs_to_stderr(monkeypatch, capsys):
    def main(*, a):
        logging.getLogger("blindlca.x").info("value %s", a)

    monkeypatch.setattr(sys, "argv", ["step.py", "--a", "7"])
    run(main, {})
    assert "value 7" in capsys.readouterr().err


def test_run_cli_missing_required_argument(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["step.py", "--a", "3", "--c", "x"])
    with pytest.raises(SystemExit) as err:
        run(_cli_main, {"__file__": "step.py"})
    assert err.value.code == 2
    assert "--b" in capsys.readouterr().err


def test_run_cli_help_lists_arguments(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["step.py", "--help"])
    with pytest.raises(SystemExit) as err:
        run(_cli_main, {"__file__": "step.py"})
    assert err.value.code == 0
    out = capsys.readouterr().out
    for name in ("--a", "--b", "--c", "--d", "--threads", "default 5"):
        assert name in out
    assert "Tests for the glue modules" in out  # the module docstring is the description


# --- io ------------------------------------------------------------------------------------------------


def test_atomic_path_success_leaves_only_target(tmp_path):
    target = tmp_path / "sub" / "dir" / "file.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp != target
        assert not target.exists()
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert os.listdir(target.parent) == ["file.txt"]


def test_atomic_path_failure_keeps_old_target(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(KeyError):
        with atomic_path(target) as tmp:
            tmp.write_text("half written")
            raise KeyError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["file.txt"]


def test_atomic_path_failure_without_old_target(tmp_path):
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "x.npy", suffix=".npy"):
            raise ValueError
    assert os.listdir(tmp_path) == []


def test_atomic_path_suffix(tmp_path):
    with atomic_path(tmp_path / "a.bin", suffix=".npy") as tmp:
        assert tmp.name.endswith(".npy")
        tmp.write_bytes(b"x")
    with atomic_path(tmp_path / "b.bin") as tmp:
        assert tmp.name.endswith(".tmp")
        tmp.write_bytes(b"x")


def test_atomic_path_output_follows_umask(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    save_json(tmp_path / "a.json", {})
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("name", ["a.npy", "a.bin"])
def test_array_round_trip(tmp_path, name):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4).transpose(2, 0, 1)  # not contiguous
    save_array(tmp_path / name, a)
    assert os.listdir(tmp_path) == [name]  # np.save added no second suffix
    got = load_array(tmp_path / name)
    assert got.dtype == np.float32 and got.shape == (4, 2, 3)
    np.testing.assert_array_equal(got, a)
    mm = load_array(tmp_path / name, mmap=True)
    assert isinstance(mm, np.memmap)
    np.testing.assert_array_equal(mm, a)


def test_array_round_trip_bool_and_int(tmp_path):
    for a in (np.array([[True, False]]), np.array([-3, 2**40], dtype=np.int64)):
        save_array(tmp_path / "x.npy", a)
        got = load_array(tmp_path / "x.npy")
        assert got.dtype == a.dtype
        np.testing.assert_array_equal(got, a)


def test_json_round_trip(tmp_path):
    obj = {"b": [1, 2.5, None, True], "a": {"nested": "x"}, "nan": float("nan")}
    save_json(tmp_path / "o" / "m.json", obj)
    got = load_json(tmp_path / "o" / "m.json")
    assert list(got) == ["b", "a", "nan"]  # key order kept
    assert got["b"] == [1, 2.5, None, True] and got["a"] == {"nested": "x"}
    assert math.isnan(got["nan"])
    assert (tmp_path / "o" / "m.json").read_text().endswith("}\n")
    assert json.loads((tmp_path / "o" / "m.json").read_text().replace("NaN", "null"))["nan"] is None


def test_csv_round_trip(tmp_path):
    rows = [{"name": "a,b", "value": 1, "note": 'say "hi"'}, {"name": "c", "value": 2.5, "note": ""}]
    write_csv(tmp_path / "t.csv", rows, fields=["name", "value", "note"])
    assert read_csv(tmp_path / "t.csv") == [
        {"name": "a,b", "value": "1", "note": 'say "hi"'},
        {"name": "c", "value": "2.5", "note": ""},
    ]
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "name,value,note"


def test_csv_missing_field_is_empty_and_unknown_field_fails_atomically(tmp_path):
    write_csv(tmp_path / "t.csv", [{"a": 1}], fields=["a", "b"])
    assert read_csv(tmp_path / "t.csv") == [{"a": "1", "b": ""}]
    with pytest.raises(ValueError):
        write_csv(tmp_path / "t.csv", [{"a": 2, "zzz": 3}], fields=["a", "b"])
    assert read_csv(tmp_path / "t.csv") == [{"a": "1", "b": ""}]
    assert os.listdir(tmp_path) == ["t.csv"]


def test_csv_header_only(tmp_path):
    write_csv(tmp_path / "e.csv", [], fields=["x"])
    assert (tmp_path / "e.csv").read_text() == "x\n"
    assert read_csv(tmp_path / "e.csv") == []


# --- device --------------------------------------------------------------------------------------------


def test_resolve_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match="no CUDA") as err:
            resolve_device(name)
        assert "device: auto" in str(err.value) and "device: cpu" in str(err.value)
        assert repr(name) in str(err.value)


def test_resolve_device_with_cuda_reported(monkeypatch):
    # torch.device objects can be built without a GPU; only the choice is tested here.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_resolve_device_real_cuda_check():
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="auto"):
        resolve_device("cuda")


@pytest.mark.parametrize("name", ["gpu", "CPU", "", "mps", "Auto"])
def test_resolve_device_bad_names(name):
    with pytest.raises(ValueError, match="is not one of"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["cuda1", "cudax", "cuda:"])
def test_resolve_device_malformed_cuda_name(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ValueError, match="is not one of"):
        resolve_device(name)
