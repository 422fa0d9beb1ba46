"""Bad input gets a clear ValueError/TypeError that names the argument; inputs are never
modified; dtypes convert as documented; array-likes are accepted."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import scipy.sparse

import lowrank

FUNCS = {
    "column_id": lowrank.column_id,
    "row_id": lowrank.row_id,
    "cur": lowrank.cur,
    "rsvd": lowrank.rsvd,
}
ID_FUNCS = ("column_id", "row_id")
SKETCH_FUNCS = ("column_id", "row_id", "cur")


def _A(m=30, n=20, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((m, n)).astype(dtype)


def _with(value, i, j):
    A = _A()
    A[i, j] = value
    return A


def _names(message, *names):
    """Whether every name appears in the message as a word (``A`` must not match ``NaN``)."""
    return all(re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", message) for n in names)


# (id, A, args, kwargs, exception, names the message must contain)
COMMON = [
    ("1-D", lambda: np.ones(5), (1,), {}, ValueError, ["A"]),
    ("stack-empty-batch", lambda: np.ones((0, 4, 5)), (2,), {}, ValueError, ["A"]),
    ("stack-empty-matrices", lambda: np.ones((3, 0, 5)), (2,), {}, ValueError, ["A"]),
    ("stack-nan", lambda: np.stack([_A(), _with(np.nan, 1, 2)]), (3,), {}, ValueError, ["A"]),
    ("stack-nan-tol", lambda: np.stack([_A(), _with(np.inf, 1, 2)]), (), {"tol": 0.1}, ValueError, ["A"]),
    ("stack-rank-too-big", lambda: np.ones((3, 4, 5)), (5,), {}, ValueError, ["rank"]),
    ("stack-bool", lambda: np.ones((3, 4, 5), dtype=bool), (2,), {}, TypeError, ["A"]),
    ("stack-rng-str", lambda: np.ones((3, 4, 5)), (2,), {"rng": "seed"}, TypeError, ["rng"]),
    ("stack-oversample", lambda: np.ones((3, 4, 5)), (2,), {"oversample": -1}, ValueError, ["oversample"]),
    ("0-D", lambda: np.float64(3.0), (1,), {}, ValueError, ["A"]),
    ("empty-0x5", lambda: np.ones((0, 5)), (1,), {}, ValueError, ["A"]),
    ("empty-5x0", lambda: np.ones((5, 0)), (1,), {}, ValueError, ["A"]),
    ("nan", lambda: _with(np.nan, 3, 4), (3,), {}, ValueError, ["A"]),
    ("inf", lambda: _with(np.inf, 0, 0), (3,), {}, ValueError, ["A"]),
    ("-inf", lambda: _with(-np.inf, 29, 19), (3,), {}, ValueError, ["A"]),
    ("nan-tol", lambda: _with(np.nan, 3, 4), (), {"tol": 0.1}, ValueError, ["A"]),
    ("rank-0", _A, (0,), {}, ValueError, ["rank"]),
    ("rank-negative", _A, (-2,), {}, ValueError, ["rank"]),
    ("rank-too-big", _A, (21,), {}, ValueError, ["rank"]),
    ("rank-float", _A, (3.0,), {}, TypeError, ["rank"]),
    ("rank-bool", _A, (True,), {}, TypeError, ["rank"]),
    ("rank-str", _A, ("3",), {}, TypeError, ["rank"]),
    ("tol-0", _A, (), {"tol": 0.0}, ValueError, ["tol"]),
    ("tol-negative", _A, (), {"tol": -0.1}, ValueError, ["tol"]),
    ("tol-1", _A, (), {"tol": 1.0}, ValueError, ["tol"]),
    ("tol-above-1", _A, (), {"tol": 1.5}, ValueError, ["tol"]),
    ("tol-nan", _A, (), {"tol": float("nan")}, ValueError, ["tol"]),
    ("tol-str", _A, (), {"tol": "0.1"}, TypeError, ["tol"]),
    ("tol-bool", _A, (), {"tol": True}, TypeError, ["tol"]),
    ("rank-and-tol", _A, (3,), {"tol": 0.1}, ValueError, ["rank", "tol"]),
    ("neither", _A, (), {}, ValueError, ["rank", "tol"]),
    ("dtype-bool", lambda: _A() > 0, (3,), {}, TypeError, ["A"]),
    ("dtype-object", lambda: _A().astype(object), (3,), {}, TypeError, ["A"]),
    ("dtype-str", lambda: _A().astype(str), (3,), {}, TypeError, ["A"]),
    ("dtype-datetime", lambda: np.zeros((4, 3), dtype="datetime64[s]"), (1,), {}, TypeError, ["A"]),
    ("scipy-sparse-bool", lambda: scipy.sparse.csr_matrix(_A() > 0), (3,), {}, TypeError, ["A"]),
    ("scipy-sparse-empty", lambda: scipy.sparse.csr_matrix((0, 4)), (1,), {}, ValueError, ["A"]),
    ("not-an-array", lambda: object(), (1,), {}, TypeError, ["A"]),
    ("rng-str", _A, (3,), {"rng": "seed"}, TypeError, ["rng"]),
    ("rng-RandomState", _A, (3,), {"rng": np.random.RandomState(0)}, TypeError, ["rng"]),
    ("rng-float", _A, (3,), {"rng": 1.5}, TypeError, ["rng"]),
    ("oversample-negative", _A, (3,), {"oversample": -1}, ValueError, ["oversample"]),
    ("oversample-float", _A, (3,), {"oversample": 2.5}, TypeError, ["oversample"]),
    ("block_size-0", _A, (), {"tol": 0.1, "block_size": 0}, ValueError, ["block_size"]),
    ("block_size-negative", _A, (), {"tol": 0.1, "block_size": -4}, ValueError, ["block_size"]),
]

SPECIFIC = [
    ("method-unknown", SKETCH_FUNCS, {"method": "svd"}, ValueError, ["method"]),
    ("method-case", SKETCH_FUNCS, {"method": "LUPP"}, ValueError, ["method"]),
    ("method-None", SKETCH_FUNCS, {"method": None}, ValueError, ["method"]),
    ("interp-unknown", ID_FUNCS, {"interp": "exact"}, ValueError, ["interp"]),
    ("sketch-unknown", SKETCH_FUNCS, {"sketch": "srht"}, ValueError, ["sketch"]),
    ("core-unknown", ("cur",), {"core": "pinv"}, ValueError, ["core"]),
    ("n_iter-negative", ("rsvd",), {"n_iter": -1}, ValueError, ["n_iter"]),
    ("n_iter-float", ("rsvd",), {"n_iter": 1.0}, TypeError, ["n_iter"]),
    ("qr-with-sketch-interp", ID_FUNCS, {"method": "qr", "interp": "sketch"}, ValueError, ["interp"]),
    (
        "qr-with-oversampled-interp",
        ID_FUNCS,
        {"method": "qr", "interp": "oversampled"},
        ValueError,
        ["interp"],
    ),
]


def _expect(fn, A, args, kwargs, exc, names):
    with pytest.raises(exc) as info:
        fn(A, *args, **kwargs)
    assert type(info.value) in (ValueError, TypeError), type(info.value)
    message = str(info.value)
    assert _names(message, *names), f"message {message!r} does not name {names}"


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize(
    ("make", "args", "kwargs", "exc", "names"), [c[1:] for c in COMMON], ids=[c[0] for c in COMMON]
)
def test_bad_input(func, make, args, kwargs, exc, names):
    _expect(FUNCS[func], make(), args, kwargs, exc, names)


@pytest.mark.parametrize(
    ("funcs", "kwargs", "exc", "names"), [c[1:] for c in SPECIFIC], ids=[c[0] for c in SPECIFIC]
)
def test_bad_option(funcs, kwargs, exc, names):
    for func in funcs:
        for mode in ({"rank": 3}, {"tol": 0.1}):
            _expect(FUNCS[func], _A(), (), {**mode, **kwargs}, exc, names)


STRICT_CASES = [
    ("1-D", lambda: np.ones(5), (1,), ValueError, ["A"]),
    ("empty", lambda: np.ones((0, 5)), (1,), ValueError, ["A"]),
    ("nan", lambda: _with(np.nan, 1, 1), (3,), ValueError, ["A"]),
    ("inf", lambda: _with(np.inf, 2, 2), (3,), ValueError, ["A"]),
    ("bool", lambda: _A() > 0, (3,), TypeError, ["A"]),
    ("rank-too-big", _A, (25,), ValueError, ["rank"]),
]


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize(
    ("make", "args", "exc", "names"), [c[1:] for c in STRICT_CASES], ids=[c[0] for c in STRICT_CASES]
)
def test_bad_input_generic_backend(func, make, args, exc, names):
    """The same checks with array_api_strict arrays (the generic backend)."""
    import array_api_strict

    _expect(FUNCS[func], array_api_strict.asarray(make()), args, {}, exc, names)


def test_rank_accepts_numpy_integers():
    """numpy integer scalars are integers (operator.index), e.g. a rank from np.argmax."""
    for fn in FUNCS.values():
        assert fn(_A(), np.int64(3), rng=0).rank == 3


# ---------------------------------------------------------------------------------------------
# check_finite=False


def _call(func, A, mode, method):
    kwargs = {"rng": 0, "check_finite": False}
    if func != "rsvd":
        kwargs["method"] = method
    if mode == "fixed":
        return FUNCS[func](A, 3, **kwargs)
    return FUNCS[func](A, tol=0.5, **kwargs)


@pytest.mark.parametrize("mode", ["fixed", "tol"])
@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
def test_check_finite_false_never_silent(func, value, mode):
    """check_finite=False skips the up-front check, but every call computes ||A||_F first: a NaN
    or Inf is still a ValueError that says where it was found, never a result (no silent rank 0,
    no NaN error, no garbage factors), and no warning leaks."""
    A = _with(value, 3, 4)
    methods = ("lupp", "cpqr", "qr", "rbrp") if func != "rsvd" else (None,)
    for method in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match="NaN or Inf") as info:
                _call(func, A, mode, method)
        assert "found in" in str(info.value)


def test_check_finite_false_on_finite_input_same_result():
    """On finite input check_finite only skips a check: identical results."""
    A = _A(60, 40)
    for name, fn in FUNCS.items():
        a = fn(A, 5, rng=3)
        b = fn(A, 5, rng=3, check_finite=False)
        for x, y in zip(a, b, strict=True):
            if isinstance(x, np.ndarray):
                assert np.array_equal(x, y), name
            else:
                assert x == y, name


# ---------------------------------------------------------------------------------------------
# Inputs are never modified


def _layouts():
    base = np.random.default_rng(5).standard_normal((90, 70))
    return {
        "C": np.ascontiguousarray(base[:45, :35]),
        "F": np.asfortranarray(base[:45, :35]),
        "strided": base[::2, ::2],
        "reversed": base[::-2, ::-2],
    }


@pytest.mark.parametrize("layout", ["C", "F", "strided", "reversed"])
@pytest.mark.parametrize("mode", ["fixed", "tol"])
@pytest.mark.parametrize("func", FUNCS)
def test_input_never_modified(backend, func, mode, layout):
    """Every public function, both modes, all methods and options, any memory layout: the input
    is bit-for-bit unchanged afterwards, and the result does not alias it."""
    A = _layouts()[layout].astype(np.complex128) * (1 + 0.5j)
    Ab = backend.asarray(A) if backend.name != "numpy" else A
    before = backend.to_numpy(Ab)
    fn = FUNCS[func]
    option_sets = [{}]
    if func in ID_FUNCS:
        option_sets = [
            {"method": m, "interp": i}
            for m, i in [
                ("lupp", "optimal"),
                ("lupp", "sketch"),
                ("lupp", "oversampled"),
                ("cpqr", "optimal"),
                ("cpqr", "sketch"),
                ("qr", "optimal"),
            ]
        ]
        option_sets.append({"sketch": "sparse_sign"})
    elif func == "cur":
        option_sets = [
            {"method": m, "core": c} for m in ("lupp", "cpqr", "qr") for c in ("optimal", "cross", "id")
        ]
    elif func == "rsvd":
        option_sets = [{"n_iter": 0}, {"n_iter": 2}]
    for opts in option_sets:
        res = fn(Ab, 8, rng=1, **opts) if mode == "fixed" else fn(Ab, tol=0.3, rng=1, **opts)
        assert np.array_equal(backend.to_numpy(Ab), before), opts
        if backend.name == "numpy":
            assert A.flags.writeable
            for out in res:
                if isinstance(out, np.ndarray):
                    assert not np.shares_memory(out, A), opts


# ---------------------------------------------------------------------------------------------
# Dtypes and array-likes


def _float_outputs(func, res):
    if func in ID_FUNCS:
        return [res.interp]
    if func == "cur":
        return [res.C, res.U, res.R]
    return [res.U, res.Vh]


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("int_dtype", [np.int8, np.int32, np.int64, np.uint16])
def test_integer_input_becomes_float64(backend, func, int_dtype):
    A = np.random.default_rng(0).integers(0, 50, size=(30, 20)).astype(int_dtype)
    res = FUNCS[func](backend.asarray(A), 4, rng=0)
    for out in _float_outputs(func, res):
        assert backend.to_numpy(out).dtype == np.float64
    if func == "rsvd":
        assert backend.to_numpy(res.S).dtype == np.float64


@pytest.mark.parametrize("mode", ["fixed", "tol"])
@pytest.mark.parametrize("func", FUNCS)
def test_dtype_is_kept(backend, dtype, func, mode):
    """float32, float64, complex64, complex128 keep their precision in every result; rsvd's S is
    real of the same precision; indices are integers."""
    A = np.random.default_rng(1).standard_normal((30, 20)).astype(dtype)
    if dtype.kind == "c":
        A = A + 1j * np.random.default_rng(2).standard_normal((30, 20)).astype(dtype)
    Ab = backend.asarray(A)
    fn = FUNCS[func]
    res = fn(Ab, 4, rng=0) if mode == "fixed" else fn(Ab, tol=0.5, rng=0)
    for out in _float_outputs(func, res):
        assert backend.to_numpy(out).dtype == dtype
    if func == "rsvd":
        assert backend.to_numpy(res.S).dtype == np.finfo(dtype).dtype
    elif func == "cur":
        assert np.issubdtype(backend.to_numpy(res.cols).dtype, np.integer)
        assert np.issubdtype(backend.to_numpy(res.rows).dtype, np.integer)
    else:
        assert np.issubdtype(backend.to_numpy(res.skeleton).dtype, np.integer)
        assert backend.to_numpy(res.reconstruct(Ab)).dtype == dtype


@pytest.mark.parametrize("func", FUNCS)
def test_float16_becomes_float32(func):
    A = _A().astype(np.float16)
    res = FUNCS[func](A, 4, rng=0)
    for out in _float_outputs(func, res):
        assert out.dtype == np.float32


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("kind", ["list", "tuple", "matrix"])
@pytest.mark.parametrize("func", FUNCS)
def test_array_likes_accepted(func, kind):
    """Nested lists, tuples and np.matrix go through numpy.asarray (as in SciPy); the result is
    plain NumPy arrays, equal to that for the ndarray."""
    A = _A(12, 8)
    like = {
        "list": A.tolist,
        "tuple": lambda: tuple(map(tuple, A.tolist())),
        "matrix": lambda: np.asmatrix(A),
    }
    res = FUNCS[func](like[kind](), 3, rng=0)
    ref = FUNCS[func](A, 3, rng=0)
    for out, r in zip(res, ref, strict=True):
        if isinstance(r, np.ndarray):
            assert type(out) is np.ndarray
            assert np.array_equal(out, r)
    if func in ID_FUNCS:
        assert res.reconstruct(A).shape == (12, 8)


def test_integer_list_input():
    res = lowrank.column_id([[1, 2, 3], [2, 4, 6], [1, 0, 1]], 2, rng=0)
    assert res.interp.dtype == np.float64
    assert np.allclose(
        res.reconstruct(np.array([[1, 2, 3], [2, 4, 6], [1, 0, 1]], float)), [[1, 2, 3], [2, 4, 6], [1, 0, 1]]
    )
