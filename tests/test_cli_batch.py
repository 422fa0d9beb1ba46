"""``python -m lowrank batch``: run in-process through ``lowrank._cli.main(argv)`` on files in
``tmp_path``; check exit codes, stderr messages and the saved factors against the inputs.

Accuracy bounds (from tests/_util.py, the same ones the library's own tests use): the matrices have
singular values ``0.5^i`` and Haar singular vectors, so the optimal rank-k relative Frobenius error
is ``tail(s, k) / ||s||``. A column or row ID with the optimal interpolation (the CLI's default) is
judged by the volume-sampling factor ``sqrt(k + 1)`` (``volume_bound``), CUR with the optimal core
by ``2 sqrt(k + 1)`` (``cur_bound``), the randomized SVD by the HMT factor ``sqrt(2 + k / (p - 1))``
(p = 10, as tests/test_rsvd.py); each plus the rounding floor ``recon_floor``. The saved ``error``
is exact up to rounding: its square is compared with the recomputed one within ``error_rounding``.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest
from _util import cur_bound, error_rounding, recon_floor, rel_err, tail, volume_bound

from lowrank import _cli
from lowrank.testing import matrix_with_spectrum

M, N, K = 60, 40, 8
S = 0.5 ** np.arange(min(M, N))
OPT = tail(S, K) / float(np.linalg.norm(S))  # optimal rank-K relative Frobenius error


def _matrix(seed, m=M, n=N, dtype=np.float64):
    return matrix_with_spectrum(m, n, 0.5 ** np.arange(min(m, n)), rng=seed, dtype=dtype)


def _run(capsys, *argv):
    """``main(["batch", *argv])`` -> (exit code, stdout, stderr)."""
    code = _cli.main(["batch", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _load(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _reconstruct(kind, A, r, key):
    if kind == "id":
        return A[:, r[f"{key}/skeleton"]] @ r[f"{key}/interp"]
    if kind == "rowid":
        return r[f"{key}/interp"] @ A[r[f"{key}/skeleton"], :]
    if kind == "cur":
        return A[:, r[f"{key}/cols"]] @ r[f"{key}/U"] @ A[r[f"{key}/rows"], :]
    return (r[f"{key}/U"] * r[f"{key}/S"]) @ r[f"{key}/Vh"]


def _factor(kind, k):
    if kind in ("id", "rowid"):
        return volume_bound(k)
    if kind == "cur":
        return cur_bound(k)
    return math.sqrt(2 + k / (10 - 1))


def _check_fixed(kind, A, r, key, k=K):
    """Rank, the saved error against the reconstruction, and the reconstruction against the
    optimum (bounds in the module docstring)."""
    assert int(r[f"{key}/rank"]) == k
    err = rel_err(A, _reconstruct(kind, A, r, key))
    m, n = A.shape
    assert abs(float(r[f"{key}/error"]) ** 2 - err**2) <= error_rounding(A.dtype, m, n)
    opt = tail(0.5 ** np.arange(min(m, n)), k) / float(np.linalg.norm(0.5 ** np.arange(min(m, n))))
    assert err <= _factor(kind, k) * opt + recon_floor(A.dtype, k), f"{err / opt:.2f} x optimal"


# -- inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["id", "rowid", "cur", "svd"])
def test_npy_fixed_rank_every_kind(tmp_path, capsys, kind):
    A = _matrix(1)
    np.save(tmp_path / "a.npy", A)
    out = tmp_path / "out.npz"
    code, stdout, stderr = _run(capsys, tmp_path / "a.npy", "-o", out, "--kind", kind, "--rank", K)
    assert code == 0, stderr
    assert "1 of 1 input(s) decomposed" in stdout
    r = _load(out)
    assert set(r) == {f"a/{f}" for f in _cli.BATCH_FIELDS[kind]}
    _check_fixed(kind, A, r, "a")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), A)  # input untouched


def test_npz_members_tolerance_mode(tmp_path, capsys):
    """Every array of a .npz is an input (key STEM/NAME); tolerance mode meets tol."""
    X, Y = _matrix(2), _matrix(3, 50, 70, np.float32)
    np.savez(tmp_path / "b.npz", x=X, y=Y)
    out = tmp_path / "out.npz"
    tol = 1e-3
    code, _, stderr = _run(capsys, tmp_path / "b.npz", "-o", out, "--tol", tol, "--method", "cpqr")
    assert code == 0, stderr
    r = _load(out)
    assert {k.rsplit("/", 1)[0] for k in r} == {"b/x", "b/y"}
    for key, A in (("b/x", X), ("b/y", Y)):
        assert r[f"{key}/interp"].dtype == A.dtype
        err = rel_err(A, _reconstruct("id", A, r, key))
        # tolerance mode with the optimal interpolation: the exact error is at most tol
        assert err**2 <= tol**2 + error_rounding(A.dtype, *A.shape), (key, err)
        assert abs(float(r[f"{key}/error"]) ** 2 - err**2) <= error_rounding(A.dtype, *A.shape)
        assert int(r[f"{key}/rank"]) == r[f"{key}/skeleton"].shape[0]


def test_folder_sorted_nonrecursive_and_output_inside(tmp_path, capsys):
    """A folder gives its .npy/.npz files in sorted order (not subfolders, not other files);
    an output written into the folder is not read back as an input on the next run."""
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    mats = {"c": _matrix(4), "a": _matrix(5)}
    np.save(d / "c.npy", mats["c"])
    np.save(d / "a.npy", mats["a"])
    np.savez(d / "b.npz", m=_matrix(6))
    np.save(d / "sub" / "deep.npy", _matrix(7))
    (d / "notes.txt").write_text("not an input")
    out = d / "results.npz"
    for _ in range(2):
        code, stdout, stderr = _run(capsys, d, "-o", out, "--rank", K)
        assert code == 0, stderr
        assert "3 of 3 input(s)" in stdout
    r = _load(out)
    keys = list(dict.fromkeys(k.rsplit("/", 1)[0] for k in r))
    assert keys == ["a", "b/m", "c"]  # sorted by file name; the output is written in input order
    for key in ("a", "c"):
        _check_fixed("id", mats[key], r, key)


def test_repeated_keys_get_suffixes(tmp_path, capsys):
    for sub in ("p", "q"):
        (tmp_path / sub).mkdir()
        np.save(tmp_path / sub / "a.npy", _matrix(8))
    out = tmp_path / "o.npz"
    code, _, stderr = _run(capsys, tmp_path / "p" / "a.npy", tmp_path / "q", "-o", out, "--rank", K)
    assert code == 0, stderr
    assert {k.rsplit("/", 1)[0] for k in _load(out)} == {"a", "a#2"}


# -- failures ---------------------------------------------------------------------------------


def test_failures_are_reported_recorded_and_the_rest_continue(tmp_path, capsys):
    good = _matrix(9)
    np.save(tmp_path / "good.npy", good)
    (tmp_path / "broken.npy").write_bytes(b"this is not an array")
    bad = good.copy()
    bad[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "small.npy", _matrix(10, 6, 5))  # rank K = 8 > min(6, 5)
    np.savez(tmp_path / "obj.npz", o=np.array([1, "x"], dtype=object), ok=good)  # pickled member
    np.save(tmp_path / "vec.npy", np.arange(5.0))  # 1-D: not a matrix
    inputs = [tmp_path / f for f in ("good.npy", "broken.npy", "nan.npy", "small.npy", "obj.npz",
                                     "vec.npy")]
    out = tmp_path / "out.npz"
    code, stdout, stderr = _run(capsys, *inputs, "-o", out, "--rank", K)
    assert code == 1
    assert "2 of 7 input(s) decomposed" in stdout and "5 failed" in stdout
    expected = {  # key -> a piece of the message that must be on stderr and in KEY/failed
        "broken": "not a NumPy .npy or .npz file",
        "nan": "NaN or Inf (pass --no-check-finite to skip)",  # the flag, not the Python keyword
        "small": "rank",
        "obj/o": "allow_pickle",
        "vec": "2-D",
    }
    r = _load(out)  # loads without pickle: the failure messages are plain str arrays
    for key, piece in expected.items():
        lines = [ln for ln in stderr.splitlines() if f"failed: {key} (" in ln]
        assert len(lines) == 1, (key, stderr)  # reported once
        assert piece in lines[0], (key, lines[0])
        msg = r[f"{key}/failed"]
        assert msg.shape == () and msg.dtype.kind == "U" and piece in str(msg)
        assert not any(k.startswith(f"{key}/") and k != f"{key}/failed" for k in r)
    _check_fixed("id", good, r, "good")
    _check_fixed("id", good, r, "obj/ok")


@pytest.mark.parametrize("progress", ["lines", "bar", "none"])
def test_each_failure_is_reported_once(tmp_path, capsys, monkeypatch, progress):
    """One stderr line per failed input, whatever the progress display."""
    if progress == "bar":
        pytest.importorskip("tqdm")
    else:
        monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` raises ImportError
    monkeypatch.setattr(_cli, "_stderr_is_terminal", lambda: True)
    np.save(tmp_path / "a.npy", _matrix(60))
    (tmp_path / "bad.npy").write_bytes(b"junk")
    extra = ["--no-progress"] if progress == "none" else []
    code, _, err = _run(capsys, tmp_path, "-o", tmp_path / "o.npz", "--rank", K, *extra)
    assert code == 1
    assert err.count("failed: bad (") == 1 and err.count("not a NumPy .npy or .npz file") == 1, err
    assert "FAILED" not in err


def test_no_check_finite_skips_the_check(tmp_path, capsys, monkeypatch):
    """--no-check-finite passes check_finite=False (seen by the library) and changes nothing for a
    finite matrix: the same seed gives the same arrays."""
    import lowrank

    seen, real = [], lowrank.column_id

    def spy(A, rank=None, **kw):
        seen.append(kw["check_finite"])
        return real(A, rank, **kw)

    monkeypatch.setattr(lowrank, "column_id", spy)
    np.save(tmp_path / "a.npy", _matrix(61))
    for name, extra in (("on", []), ("off", ["--no-check-finite"])):
        code, _, err = _run(capsys, tmp_path / "a.npy", "-o", tmp_path / f"{name}.npz", "--rank",
                            K, *extra)
        assert code == 0, err
    assert seen == [True, False]
    on, off = _load(tmp_path / "on.npz"), _load(tmp_path / "off.npz")
    assert on.keys() == off.keys()
    for k in on:
        np.testing.assert_array_equal(on[k], off[k])


def test_stack_nan_is_a_failure_of_that_input(tmp_path, capsys):
    """One bad matrix in a stack fails that input (reported), the 2-D inputs still go through."""
    st = np.stack([_matrix(11), _matrix(12)])
    st[1, 0, 0] = np.inf
    np.save(tmp_path / "st.npy", st)
    np.save(tmp_path / "ok.npy", _matrix(13))
    code, _, stderr = _run(capsys, tmp_path / "st.npy", tmp_path / "ok.npy", "-o",
                           tmp_path / "o.npz", "--rank", K)
    assert code == 1 and "failed: st (" in stderr
    assert "ok/interp" in _load(tmp_path / "o.npz")


# -- usage errors (exit 2) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "one of the arguments --rank --tol is required"),
        (["--rank", "3", "--tol", "0.1"], "not allowed with argument"),
        (["--rank", "0"], "--rank must be at least 1"),
        (["--tol", "1.5"], "--tol must be in (0, 1)"),
        (["--rank", "3", "--kind", "svd", "--method", "cpqr"], "--kind svd takes none"),
        (["--rank", "3", "--store-factors"], "--kind cur only"),
        (["--rank", "3", "--method", "nope"], "invalid choice"),
    ],
)
def test_usage_errors(tmp_path, capsys, extra, message):
    np.save(tmp_path / "a.npy", _matrix(14))
    code, _, stderr = _run(capsys, tmp_path / "a.npy", "-o", tmp_path / "o.npz", *extra)
    assert code == 2
    assert message in stderr
    assert not (tmp_path / "o.npz").exists()


def test_usage_errors_paths(tmp_path, capsys):
    np.save(tmp_path / "a.npy", _matrix(14))
    (tmp_path / "empty").mkdir()
    # an input path that does not exist: a usage error before anything runs or is written
    code, out, err = _run(capsys, tmp_path / "a.npy", tmp_path / "missing.npy", "-o",
                          tmp_path / "o.npz", "--rank", 2)
    assert code == 2 and "no such file or folder" in err and "missing.npy" in err and out == ""
    # an output name that is not .npz: rejected, never renamed behind the user's back
    for name in ("out.txt", "out", "out.npy"):
        code, _, err = _run(capsys, tmp_path / "a.npy", "-o", tmp_path / name, "--rank", 2)
        assert code == 2 and "ending in .npz" in err and name in err
    code, _, err = _run(capsys, tmp_path / "empty", "-o", tmp_path / "o.npz", "--rank", 2)
    assert code == 2 and "no inputs" in err
    code, _, err = _run(capsys, tmp_path / "a.npy", "-o", tmp_path / "nowhere" / "o.npz", "--rank", 2)
    assert code == 2 and "does not exist" in err
    np.savez(tmp_path / "b.npz", x=_matrix(14))
    code, _, err = _run(capsys, tmp_path / "b.npz", "-o", tmp_path / "b.npz", "--rank", 2)
    assert code == 2 and "also an input" in err
    np.testing.assert_array_equal(np.load(tmp_path / "b.npz")["x"], _matrix(14))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), _matrix(14))
    # no output, no temporary file left
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.npz", "empty"]
    code, _, err = _run(capsys, tmp_path / "a.npy", "-o", tmp_path / "UPPER.NPZ", "--rank", 2)
    assert code == 0, err  # the suffix is checked without regard to case


def test_gpu_requested_but_unavailable(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_cli, "_cupy_or_none", lambda: (None, "no CUDA device (test)"))
    np.save(tmp_path / "a.npy", _matrix(15))
    code, _, err = _run(capsys, tmp_path / "a.npy", "-o", tmp_path / "o.npz", "--rank", 2,
                        "--device", "gpu")
    assert code == 2 and "--device gpu" in err and "no CUDA device (test)" in err
    # auto falls back to the CPU
    code, out, err = _run(capsys, tmp_path / "a.npy", "-o", tmp_path / "o.npz", "--rank", 2)
    assert code == 0 and "cpu" in out, err


def test_help_explains_itself(capsys):
    assert _cli.main(["batch", "--help"]) == 0
    out = capsys.readouterr().out
    for piece in ("python -m lowrank batch", "examples:", "KEY/skeleton", "KEY/failed",
                  "allow_pickle=False", "Exit status"):
        assert piece in out, piece
    assert _cli.main(["--help"]) == 0 and "batch" in capsys.readouterr().out


# -- output details -----------------------------------------------------------------------------


def test_store_factors_and_compress(tmp_path, capsys):
    A = _matrix(16)
    np.save(tmp_path / "a.npy", A)
    out = tmp_path / "o.npz"
    code, _, err = _run(capsys, tmp_path / "a.npy", "-o", out, "--kind", "cur", "--rank", K,
                        "--store-factors", "--compress")
    assert code == 0, err
    r = _load(out)
    np.testing.assert_array_equal(r["a/C"], A[:, r["a/cols"]])
    np.testing.assert_array_equal(r["a/R"], A[r["a/rows"], :])


def test_same_seed_same_output(tmp_path, capsys):
    """Randomized methods: the same --seed gives identical arrays, another seed other skeletons
    (method sqnorm samples the skeleton in one shot; on this matrix seeds 3 and 4 draw different
    ones: seen, not assumed)."""
    np.save(tmp_path / "a.npy", _matrix(17, 80, 80))
    runs = []
    for seed, name in ((3, "x"), (3, "y"), (4, "z")):
        code, _, err = _run(capsys, tmp_path / "a.npy", "-o", tmp_path / f"{name}.npz", "--rank", K,
                            "--method", "sqnorm", "--seed", seed)
        assert code == 0, err
        runs.append(_load(tmp_path / f"{name}.npz"))
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])
    assert not np.array_equal(runs[0]["a/skeleton"], runs[2]["a/skeleton"])


def test_progress_lines_without_tqdm(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` raises ImportError
    monkeypatch.setattr(_cli, "_stderr_is_terminal", lambda: True)
    for i in range(2):
        np.save(tmp_path / f"m{i}.npy", _matrix(18 + i))
    code, _, err = _run(capsys, tmp_path, "-o", tmp_path / "out.npz", "--rank", K)
    assert code == 0
    assert "[1/2] m0: rank 8, error" in err and "[2/2] m1: rank 8, error" in err
    code, _, err = _run(capsys, tmp_path / "m0.npy", "-o", tmp_path / "o2.npz", "--rank", K,
                        "--no-progress")
    assert code == 0 and err == ""


def test_progress_bar_with_tqdm(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(_cli, "_stderr_is_terminal", lambda: True)
    np.save(tmp_path / "m.npy", _matrix(20))
    (tmp_path / "bad.npy").write_bytes(b"junk")
    code, _, err = _run(capsys, tmp_path, "-o", tmp_path / "out.npz", "--rank", K)
    assert code == 1
    assert "lowrank batch" in err and "2/2" in err  # the bar reached the end
    assert "failed: bad (" in err


def test_interrupt_leaves_no_partial_output(tmp_path, capsys, monkeypatch):
    """Ctrl-C during the second input: exit 130, the old output untouched, no temporary file."""
    for i in range(2):
        np.save(tmp_path / f"m{i}.npy", _matrix(50 + i))
    out = tmp_path / "out.npz"
    out.write_bytes(b"previous results")
    real, calls = _cli._decompose, []

    def interrupted(args, A):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(args, A)

    monkeypatch.setattr(_cli, "_decompose", interrupted)
    code, _, err = _run(capsys, tmp_path / "m0.npy", tmp_path / "m1.npy", "-o", out, "--rank", K)
    assert code == 130 and "interrupted" in err
    assert out.read_bytes() == b"previous results"
    assert sorted(os.listdir(tmp_path)) == ["m0.npy", "m1.npy", "out.npz"]


def test_method_list_matches_the_library():
    from lowrank import _id

    assert set(_cli.ID_METHODS) == set(_id.METHODS)


# -- stacks (..., m, n) ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["id", "cur", "svd"])
def test_stack_fixed_rank(tmp_path, capsys, kind):
    st = np.stack([_matrix(21 + i) for i in range(3)])
    np.save(tmp_path / "st.npy", st)
    code, _, err = _run(capsys, tmp_path / "st.npy", "-o", tmp_path / "o.npz", "--kind", kind,
                        "--rank", K)
    assert code == 0, err
    r = _load(tmp_path / "o.npz")
    assert r["st/error"].shape == (3,)
    for i in range(3):
        one = {k.replace("st/", "one/"): (v if v.ndim == 0 else v[i]) for k, v in r.items()}
        _check_fixed(kind, st[i], one, "one")


def test_stack_tolerance_mode(tmp_path, capsys):
    # two spectra (0.5^i and 0.2^i) so that the two ranks differ and the padding shows
    st = np.stack([_matrix(30), matrix_with_spectrum(M, N, 0.2 ** np.arange(N), rng=31)])
    np.save(tmp_path / "st.npy", st)
    tol = 1e-2
    code, _, err = _run(capsys, tmp_path / "st.npy", "-o", tmp_path / "o.npz", "--tol", tol)
    assert code == 0, err
    r = _load(tmp_path / "o.npz")
    ranks = r["st/rank"]
    assert ranks.shape == (2,) and ranks[0] > ranks[1]
    kmax = int(ranks.max())
    assert r["st/skeleton"].shape == (2, kmax) and r["st/interp"].shape == (2, kmax, N)
    for i in range(2):
        k = int(ranks[i])
        skel, interp = r["st/skeleton"][i, :k], r["st/interp"][i, :k]
        assert not np.any(r["st/interp"][i, k:])  # padding rows are zero
        err = rel_err(st[i], st[i][:, skel] @ interp)
        assert err**2 <= tol**2 + error_rounding(st.dtype, M, N)


# -- the demo command still works next to batch -------------------------------------------------


def test_demo_still_runs(capsys):
    code = _cli.main(["demo", "--size", "60", "40", "--rank", "5", "--tol", "1e-2", "--repeats", "1",
                      "--no-scipy", "--methods", "lupp"])
    assert code == 0
    assert "lowrank lupp" in capsys.readouterr().out


# -- GPU ------------------------------------------------------------------------------------------


def test_device_plumbing_with_a_stand_in_library(tmp_path, capsys, monkeypatch):
    """The --device gpu path on a CPU machine: a stand-in "cupy" whose arrays are array_api_strict
    arrays. Inputs go through its asarray, results come back through its asnumpy (the npz holds
    NumPy arrays), and the factors are the NumPy path's up to rounding (the generic backend)."""
    import types

    import array_api_strict as xs

    seen = []

    def asarray(a):
        seen.append(type(a))
        return xs.asarray(a)

    fake = types.SimpleNamespace(
        ndarray=type(xs.asarray(0.0)), asarray=asarray, asnumpy=lambda x: np.from_dlpack(x),
        cuda=types.SimpleNamespace(Device=lambda: types.SimpleNamespace(id=0)),
    )
    monkeypatch.setattr(_cli, "_cupy_or_none", lambda: (fake, ""))
    A = _matrix(41)
    np.save(tmp_path / "a.npy", A)
    code, out, err = _run(capsys, tmp_path / "a.npy", "-o", tmp_path / "g.npz", "--rank", K,
                          "--device", "gpu")
    assert code == 0, err
    assert "gpu (CUDA device 0)" in out and seen == [np.ndarray]
    r = _load(tmp_path / "g.npz")
    assert all(type(v) is np.ndarray for v in r.values())
    _check_fixed("id", A, r, "a")



@pytest.mark.gpu
def test_gpu_matches_cpu_accuracy(tmp_path, capsys):
    cupy, why = _cli._cupy_or_none()
    if cupy is None:
        pytest.skip(why)
    A = _matrix(40)
    np.save(tmp_path / "a.npy", A)
    for kind in ("id", "svd"):
        code, out, err = _run(capsys, tmp_path / "a.npy", "-o", tmp_path / f"{kind}.npz", "--kind",
                              kind, "--rank", K, "--device", "gpu")
        assert code == 0, err
        assert "gpu" in out
        r = _load(tmp_path / f"{kind}.npz")  # plain NumPy arrays came back
        _check_fixed(kind, A, r, "a")
