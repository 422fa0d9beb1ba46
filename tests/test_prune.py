"""lowrank.prune: pruning a depth-2 block (shapes, exactness at the rank of H, reproducibility,
the reconstructions' optimality order, and clear errors on bad input)."""

from __future__ import annotations

import numpy as np
import pytest

from lowrank.prune import CRITERIA, RECONSTRUCTIONS, block_forward, prune_block

D_IN, H_WIDTH, D_OUT, N = 5, 12, 3, 60
EPS64 = float(np.finfo(np.float64).eps)


def block(seed=0):
    """Weights of a random block (d_in 5, h 12, d_out 3) and calibration inputs (60 x 5)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((D_IN, H_WIDTH)), rng.standard_normal(H_WIDTH),
            rng.standard_normal((H_WIDTH, D_OUT)), rng.standard_normal(D_OUT),
            rng.standard_normal((N, D_IN)))


def low_rank_activations(rank, seed=1):
    """Non-negative N x h activations of exact rank ``rank`` (as ReLU outputs are)."""
    rng = np.random.default_rng(seed)
    return np.abs(rng.standard_normal((N, rank))) @ np.abs(rng.standard_normal((rank, H_WIDTH)))


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("reconstruction", RECONSTRUCTIONS)
def test_shapes_and_error(criterion, reconstruction):
    W_in, b_in, W_out, b_out, X = block()
    pb = prune_block(W_in, b_in, W_out, b_out, X, width=4, criterion=criterion,
                     reconstruction=reconstruction, rng=0)
    assert pb.W_in.shape == (D_IN, 4) and pb.b_in.shape == (4,)
    assert pb.W_out.shape == (4, D_OUT) and pb.b_out.shape == (D_OUT,)
    assert pb.width == 4 and pb.kept.shape == (4,) and len(set(pb.kept.tolist())) == 4
    assert np.array_equal(pb.W_in, W_in[:, pb.kept]) and np.array_equal(pb.b_in, b_in[pb.kept])
    # the reported error is the relative output error on the calibration data
    Y = block_forward(X, W_in, b_in, W_out, b_out)
    want = np.linalg.norm(Y - pb.forward(X)) / np.linalg.norm(Y)
    assert abs(pb.error - want) <= 1e-12 * max(1.0, want)
    if reconstruction == "drop":
        assert np.array_equal(pb.W_out, W_out[pb.kept]) and np.array_equal(pb.b_out, b_out)


def test_inputs_not_modified_and_no_biases():
    W_in, b_in, W_out, b_out, X = block()
    copies = [a.copy() for a in (W_in, b_in, W_out, b_out, X)]
    pb = prune_block(W_in, None, W_out, None, X, width=3, reconstruction="interp", rng=0)
    assert pb.b_in is None and pb.b_out is None
    assert prune_block(W_in, None, W_out, None, X, width=3, reconstruction="lstsq").b_out.shape == (3,)
    for a, c in zip((W_in, b_in, W_out, b_out, X), copies, strict=True):
        assert np.array_equal(a, c)


@pytest.mark.parametrize("criterion", ["id", "weighted_id"])
def test_fold_is_exact_at_the_rank_of_H(criterion, backend):
    """With k = rank(H) the column ID is exact, so folding its interpolation matrix into W_out
    reproduces the block output. Tolerance: 1e3 eps * cond(H_S), the rounding of the ID's
    least-squares solve and of the products (cond(H_S) is checked below 1e3 first)."""
    W_in, b_in, W_out, b_out, _ = block()
    H = low_rank_activations(4)
    pb = prune_block(*(backend.asarray(a) for a in (W_in, b_in, W_out, b_out)), H=backend.asarray(H),
                     width=4, criterion=criterion, rng=0)
    assert backend.is_native(pb.W_out)
    kept = backend.to_numpy(pb.kept)
    cond = np.linalg.cond(H[:, kept])
    assert cond < 1e3
    Y = H @ W_out + b_out
    Y_pruned = H[:, kept] @ backend.to_numpy(pb.W_out) + backend.to_numpy(pb.b_out)
    tol = 1e3 * EPS64 * cond
    assert np.linalg.norm(Y - Y_pruned) <= tol * np.linalg.norm(Y)
    assert pb.error <= tol


def test_fold_is_exact_from_inputs_with_identity_activation():
    """Identity activation: H = X W_in + b_in has rank d_in + 1 = 6 < h, so width 6 is exact
    (same tolerance argument as above)."""
    W_in, b_in, W_out, b_out, X = block()
    pb = prune_block(W_in, b_in, W_out, b_out, X, activation="identity", width=D_IN + 1, rng=0)
    Y = block_forward(X, W_in, b_in, W_out, b_out, "identity")
    H = X @ W_in + b_in
    tol = 1e3 * EPS64 * np.linalg.cond(H[:, pb.kept])
    assert np.linalg.norm(Y - pb.forward(X)) <= tol * np.linalg.norm(Y)


def test_tolerance_mode_finds_the_rank():
    W_in, b_in, W_out, b_out, _ = block()
    H = low_rank_activations(3)
    pb = prune_block(W_in, b_in, W_out, b_out, H=H, tol=1e-8, criterion="id", rng=0)
    assert pb.width == 3 and pb.error < 1e-8


@pytest.mark.parametrize("criterion", ["magnitude", "activation", "weighted_activation", "random"])
def test_reconstructions_are_ordered(criterion):
    """For the same kept units, the least-squares refit (W_out and b_out free) is optimal over a
    superset of the interpolation fold (W_out free, b_out kept), which is optimal over a superset
    of dropping (one particular W_out): their output errors are ordered (up to rounding)."""
    W_in, b_in, W_out, b_out, X = block(3)
    errs = [prune_block(W_in, b_in, W_out, b_out, X, width=5, criterion=criterion,
                        reconstruction=r, rng=7).error for r in ("lstsq", "interp", "drop")]
    assert errs[0] <= errs[1] * (1 + 1e-10) and errs[1] <= errs[2] * (1 + 1e-10)


def test_score_criteria_keep_the_top_scores():
    W_in, b_in, W_out, b_out, X = block()
    H = np.maximum(X @ W_in + b_in, 0)
    out = np.linalg.norm(W_out, axis=1)
    scores = {"magnitude": np.sum(W_in**2, axis=0) + out**2,
              "activation": np.linalg.norm(H, axis=0),
              "weighted_activation": np.linalg.norm(H, axis=0) * out}
    for criterion, score in scores.items():
        pb = prune_block(W_in, b_in, W_out, b_out, X, width=4, criterion=criterion)
        assert set(pb.kept.tolist()) == set(np.argsort(-score)[:4].tolist())


def test_weighted_id_ignores_units_that_feed_nothing():
    """A unit with large activations but zero outgoing weights: the ID of H keeps it first, the
    output-weighted ID never needs it."""
    W_in, b_in, W_out, b_out, _ = block()
    H = low_rank_activations(6)
    H[:, 0] = 100.0 * np.random.default_rng(5).random(N)
    W_out[0, :] = 0.0
    plain = prune_block(W_in, b_in, W_out, b_out, H=H, width=3, criterion="id", method="qr")
    weighted = prune_block(W_in, b_in, W_out, b_out, H=H, width=3, criterion="weighted_id",
                           method="qr")
    assert 0 in plain.kept.tolist() and 0 not in weighted.kept.tolist()
    assert weighted.error < plain.error


@pytest.mark.parametrize("criterion", ["weighted_id", "random"])
def test_reproducible_per_seed(criterion):
    W_in, b_in, W_out, b_out, X = block()
    run = [prune_block(W_in, b_in, W_out, b_out, X, width=4, criterion=criterion, rng=s).kept
           for s in (11, 11)]
    assert np.array_equal(run[0], run[1])
    if criterion == "random":  # 9 different seeds cannot all give the first seed's units
        others = [prune_block(W_in, b_in, W_out, b_out, X, width=4, criterion="random", rng=s).kept
                  for s in range(12, 21)]
        assert any(not np.array_equal(np.sort(o), np.sort(run[0])) for o in others)


def test_activations():
    W_in, b_in, W_out, b_out, X = block()
    Z = X @ W_in + b_in
    for name, f in (("relu", lambda z: np.maximum(z, 0)), ("tanh", np.tanh),
                    ("logistic", lambda z: 1 / (1 + np.exp(-z))), ("identity", lambda z: z)):
        want = f(Z) @ W_out + b_out
        assert np.allclose(block_forward(X, W_in, b_in, W_out, b_out, name), want, rtol=1e-13)
        assert np.allclose(block_forward(X, W_in, b_in, W_out, b_out, f), want, rtol=1e-13)


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    W_in, b_in, W_out, b_out, _ = block()
    H = low_rank_activations(4)
    t = [torch.from_numpy(a) for a in (W_in, b_in, W_out, b_out, H)]
    pb = prune_block(*t[:4], H=t[4], width=4, rng=0)
    assert isinstance(pb.W_out, torch.Tensor) and tuple(pb.W_out.shape) == (4, D_OUT)
    assert pb.error < 1e-10  # exact at the rank of H (tolerance argument as above)
    pb = prune_block(*t[:4], H=t[4], width=2, criterion="random", reconstruction="lstsq", rng=0)
    assert isinstance(pb.kept, torch.Tensor) and pb.kept.shape == (2,)


def test_bad_input():
    import array_api_strict

    W_in, b_in, W_out, b_out, X = block()
    H = np.maximum(X @ W_in + b_in, 0)
    args = (W_in, b_in, W_out, b_out)
    cases = [
        (ValueError, "exactly one of X", dict(width=2)),
        (ValueError, "exactly one of X", dict(X=X, H=H, width=2)),
        (ValueError, "exactly one of width", dict(X=X)),
        (ValueError, "exactly one of width", dict(X=X, width=2, tol=0.1)),
        (ValueError, "width must be >= 1", dict(X=X, width=0)),
        (ValueError, "width must be <= 12", dict(X=X, width=13)),
        (ValueError, "width must be <= 5", dict(H=H[:5], width=6)),  # ID needs k <= N
        (TypeError, "width must be an integer", dict(X=X, width=2.0)),
        (ValueError, "tol needs an ID criterion", dict(X=X, tol=0.1, criterion="magnitude")),
        (ValueError, "tol must satisfy", dict(X=X, tol=1.5)),
        (ValueError, "criterion must be one of", dict(X=X, width=2, criterion="hessian")),
        (ValueError, "reconstruction must be one of", dict(X=X, width=2, reconstruction="retrain")),
        (ValueError, "activation must be one of", dict(X=X, width=2, activation="gelu")),
        (TypeError, "activation must be one of", dict(X=X, width=2, activation=3)),
        (ValueError, "X must have 5 columns", dict(X=X[:, :4], width=2)),
        (ValueError, "H must have 12 columns", dict(H=H[:, :4], width=2)),
        (ValueError, "H must not contain NaN", dict(H=np.where(H > 1, np.nan, H), width=2)),
        (ValueError, "X must be a 2-D matrix", dict(X=X[0], width=2)),
    ]
    for exc, msg, kw in cases:
        with pytest.raises(exc, match=msg):
            prune_block(*args, **kw)
    with pytest.raises(ValueError, match="W_out must have 12 rows"):
        prune_block(W_in, b_in, W_out[:4], b_out, X, width=2)
    with pytest.raises(ValueError, match=r"b_in must have shape \(12,\)"):
        prune_block(W_in, b_in[:3], W_out, b_out, X, width=2)
    with pytest.raises(TypeError, match="W_in must be real"):
        prune_block(W_in.astype(complex), b_in, W_out, b_out, X, width=2)
    with pytest.raises(TypeError, match="arrays of one array library"):
        prune_block(array_api_strict.asarray(W_in), b_in, W_out, b_out, X, width=2)
