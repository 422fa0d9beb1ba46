"""Operands: the one object through which an algorithm touches the matrix A.

An algorithm needs only a few things of A: its shape and dtype, sketches (``Omega @ A``),
products with blocks (``A @ X``, ``W @ A``, ``A^H Y``), gathers of columns or rows, squared norms
(per column and whole) and the squared norm of a residual ``A - L R``. An operand does exactly
these for one kind of A; the algorithms of :mod:`lowrank._id`, :mod:`lowrank._rbrp`,
:mod:`lowrank._rsvd`, :mod:`lowrank._cur` and :mod:`lowrank._spectral` are written once against
it and the backend's small dense operations.

Kinds: :class:`DenseOperand` (a dense array of any array-API library, through its backend),
:class:`SparseOperand` (a ``scipy.sparse`` matrix or array of any format, or a
``cupyx.scipy.sparse`` one: never densified) and :class:`OperatorOperand` (anything with
``matmat``/``rmatmat``, a ``scipy.sparse.linalg.LinearOperator`` above all: entries only through
products), and :class:`lowrank._dask.DaskOperand` (a ``dask.array`` matrix: chunked passes on
its workers; what is as large as A along a split axis stays there, lazy). Small results
(sketches, products with blocks, gathered columns) are dense arrays of the operand's namespace
``xp``; :meth:`Operand.take` returns the operand's own kind (the skeleton
matrices a caller gets back: sparse in, sparse out). :func:`lowrank._namespace.resolve` decides
the kind; :func:`make_operand` builds the operand.
"""

from __future__ import annotations

import math

import array_api_compat

from ._linalg import (
    col_sqnorms,
    ctranspose,
    orthonormal_basis,
    real_dtype,
    row_sqnorms,
    skeleton_qr,
)
from ._sketch import sketch_rows

#: Bytes of one column block of :meth:`Operand.residual_sqnorm` (the residual of a block of
#: columns is formed, in double precision for single-precision input, then dropped), and of the
#: identity blocks an operator's columns are read by.
RESIDUAL_BLOCK_BYTES = 64 << 20

#: The methods that pivot on the entries of A itself, as a whole (see :meth:`Operand.dense`).
WHOLE_MATRIX_METHODS = ("qr",)


class Operand:
    """What every kind of operand shares: the residual norms through its gathers and blocks,
    ``A^H Y`` through ``W A``, and the refusal to hand out A whole where it is not dense."""

    kind = "abstract"
    ndim = 2
    #: The power of two an operand that takes the front door itself (:meth:`defer_front_door`)
    #: scaled A by; outputs with units are unscaled by it.
    scale = 1.0
    #: Gathering many columns costs about one read of A (the optimal solve may use that).
    cheap_columns = False

    def _setup(self, xp, be, shape, dtype, device):
        self.xp, self.be = xp, be
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype, self.device = dtype, device

    def defer_front_door(self, check_finite) -> bool:
        """Whether this operand takes the front door (:func:`lowrank._contract.prepare`) itself,
        from the norm its first pass over A takes in the same tasks: ``sqnorm`` and
        :attr:`scale` are then final after that pass. The in-memory kinds do not (False): their
        norm pass costs little next to an algorithm's passes."""
        return False

    def skeleton_matrix(self, X, J, axis, scale=1.0):
        """``A[:, J]`` (axis 1) or ``A[J, :]`` (axis 0) as a caller gets it back, in A's own kind
        and units, given ``X``, the algorithms' gather of it from this operand scaled by the power
        of two ``scale``: here gathered again from A as given (exact; sparse in, sparse out)."""
        return self.take(J, axis)

    def check_method(self, method):
        """A ValueError where a skeleton-selection method has no form for this kind (none here:
        :meth:`dense` refuses what needs A whole)."""

    def rmatmat(self, Y):
        """``A^H @ Y``, as ``(Y^H A)^H``."""
        xp = self.xp
        return ctranspose(xp, self.left_matmat(ctranspose(xp, Y)))

    def sketch_rows(self, rng, l, kind="gaussian"):
        """``Omega @ A`` (l x n) through :meth:`left_matmat` with the l x m sketching operator
        formed (Gaussian, or the sparse-sign operator as the dense matrix it is); kinds with a
        cheaper way to apply it override this."""
        xp, be = self.xp, self.be
        m = self.shape[0]
        if kind == "gaussian":
            omega = be.standard_normal(rng, (l, m), real_dtype(xp, self.dtype), device=self.device,
                                       scale=1.0 / math.sqrt(l))
        else:
            from ._sketch import SPARSE_SIGN_NNZ

            rows, signs = be.sparse_sign_pattern(rng, l, m, SPARSE_SIGN_NNZ)
            omega = xp.zeros((l, m), dtype=real_dtype(xp, self.dtype), device=self.device)
            omega[rows.ravel(), _repeat(m, rows.shape[1])] = signs.ravel()
        return self.left_matmat(xp.astype(omega, self.dtype))

    def dense(self):
        """A itself, for the methods that factor A whole (``"qr"``): dense operands only."""
        raise TypeError(
            f"method={WHOLE_MATRIX_METHODS[0]!r} factors A itself as a dense matrix, and A is "
            f"{self.description}; use one of the methods that reach A through sketches, products "
            "and gathers: 'lupp', 'cpqr', 'rbrp', 'brp', 'rp', 'rpcholesky', 'sqnorm'"
        )

    def block(self, j, e):
        """Columns j..e-1 of A as a dense array."""
        raise NotImplementedError

    def whole(self):
        """A as a :class:`DenseOperand` in memory, for a method that would otherwise sketch it
        with about as many rows as A has (a sketch that large costs as much as A itself): the
        operand itself where it is dense, else A read once (a sparse matrix densified, an
        operator through products with identity blocks); None where A is not to be gathered
        into memory (the default: a chunked, distributed A)."""
        return None

    def column_residuals(self, L, R, J=None):
        """Squared 2-norms of the columns ``J`` (all if None) of ``A - L @ R`` (L m x k, R k x n),
        in working precision: the exact residual norms of a basis ``L`` with ``R = L^H A``."""
        xp, be = self.xp, self.be
        if J is None:
            n, cols = self.shape[1], self._block_columns()
            return xp.concat([col_sqnorms(xp, self.block(j, min(n, j + cols))
                                          - be.matmul(L, R[:, j:min(n, j + cols)]))
                              for j in range(0, n, cols)])
        return col_sqnorms(xp, self.columns(J) - be.matmul(L, xp.take(R, J, axis=1)))

    def residual_sqnorm(self, *factors) -> float:
        """``||A - F_1 @ ... @ F_p||_F^2`` for factors of a low-rank approximation (``F_1`` m x k,
        ``F_p`` k x n), from the residual itself, a block of columns at a time, in double
        precision whatever A's precision (the product of the factors too): the error of a
        factorization where a difference of squared norms cannot resolve it, as a user computing
        it in double precision finds it. One pass over A, ``2 m n k`` flops."""
        xp, be = self.xp, self.be
        n = self.shape[1]
        wide = _wide_dtype(xp, self.dtype)
        ws = [xp.astype(f, wide) for f in factors]
        L, R = ws[0], ws[-1]
        for f in ws[1:-1]:
            L = be.matmul(L, f)
        cols = self._block_columns()
        total = 0.0
        for j in range(0, n, cols):
            e = min(n, j + cols)
            total += be.sqnorm(xp.astype(self.block(j, e), wide) - be.matmul(L, R[:, j:e]))
        return total

    # -- range finding (randomized SVD) ---------------------------------------------------------
    # The tall factors (m x l bases) and wide ones (l x n products ``Q^H A``) of a range finder
    # are as large as A along one axis: these hooks let a kind keep them where it keeps A (the
    # defaults: dense arrays of ``xp``, in memory).

    def gaussian(self, rng, l):
        """An n x l test matrix of i.i.d. N(0, 1) entries in A's dtype."""
        xp = self.xp
        g = self.be.standard_normal(rng, (self.shape[1], l), real_dtype(xp, self.dtype),
                                    device=self.device)
        return xp.astype(g, self.dtype)

    def range_pass(self, Z, Q=None, B=None, rounds=2, final=False):
        """One range sample and its projection, ``(Qy, W)``: ``Qy = orth(A Z - Q (B Z))`` (m x l,
        ``rounds`` of :func:`~lowrank._linalg.orthonormal_basis`) and ``W = Qy^H (A - Q B)``, for
        an existing orthonormal basis ``Q`` with ``B = Q^H A`` (or none). With ``final`` the
        block joins the basis: ``Qy`` is orthogonalized against ``Q`` once more and ``W`` is
        ``Qy^H A``. Dense: two products with A."""
        xp, be = self.xp, self.be
        Y = self.matmat(Z)
        if Q is not None:
            Y = Y - be.matmul(Q, be.matmul(B, Z))
        Qy = orthonormal_basis(be, xp, Y, rounds)
        if final and Q is not None:  # re-orthogonalize against the basis (twice is enough)
            Qy = orthonormal_basis(be, xp, Qy - be.matmul(Q, be.matmul(ctranspose(xp, Q), Qy)),
                                   rounds)
        W = self.left_matmat(ctranspose(xp, Qy))
        if Q is not None and not final:
            W = W - be.matmul(be.matmul(ctranspose(xp, Qy), Q), B)
        return Qy, W

    def orth_rows(self, W, rounds=2):
        """An orthonormal basis (n x l) of the rows of a wide ``W`` of :meth:`range_pass`:
        ``orth(W^H)``."""
        xp = self.xp
        return orthonormal_basis(self.be, xp, ctranspose(xp, W), rounds)

    def svd_rows(self, B):
        """``(U, S, Vh)``, the SVD of a wide K x n factor ``B`` (a :meth:`range_pass` product)."""
        return self.be.svd(B)

    def join(self, parts, axis):
        """Range-finder factors joined: bases side by side (axis 1), products stacked (axis 0)."""
        return self.xp.concat(parts, axis=axis)

    def factor_sqnorm(self, B) -> float:
        """``||B||_F^2`` of a wide factor, as a Python float."""
        return self.be.sqnorm(B)

    def basis_times(self, Q, X):
        """``Q @ X`` for a tall basis ``Q`` (m x l) and a small ``X`` (l x k)."""
        return self.be.matmul(Q, X)

    # -- factors as long as A -------------------------------------------------------------------
    # Sketches and products ``W A`` (l x n), interpolation matrices (k x n), bases and gathered
    # columns (m x k) are as long as A along one axis. The algorithms touch them only through
    # these hooks; the defaults treat them as dense arrays of ``xp`` in memory, and a kind that
    # keeps them where it keeps A (Dask, with several chunks along that axis) overrides them.

    #: Whether this operand's sketches ``Omega A`` stay distributed (several chunks along n): the
    #: methods then take their skeleton from :meth:`sketch_skeleton` (tournament pivoting)
    #: instead of one pivoted factorization of the whole sketch.
    split_sketch = False

    #: Whether a pass over A costs more than the algorithms' arithmetic on their sketches (A read
    #: or made again on distributed workers): methods then prefer fewer, larger sketches.
    costly_passes = False

    def sketch_skeleton(self, P, Y, count, rule):
        """The skeleton of a sketch ``Y`` (l x n) that stays distributed: ``count`` pivots by
        ``rule`` (``"lu"``: LU with partial pivoting of ``Y^T``; ``"qr"``: column-pivoted QR of Y)
        as a :class:`lowrank._id.Skeleton`. None for a sketch in memory (the method factors it
        whole)."""
        return None

    def wide_take(self, W, J):
        """``W[:, J]`` of a wide factor (p x n), as a small dense array."""
        return self.xp.take(W, J, axis=1)

    def wide_row_sqnorms(self, W):
        """Squared 2-norms of the rows of a wide factor, as a small dense array."""
        return row_sqnorms(self.xp, W)

    def wide_sqnorm(self, W) -> float:
        """``||W||_F^2`` of a wide factor, as a Python float (summed in double precision)."""
        return self.be.sqnorm(W)

    def wide_map(self, fn, W, skeleton=None):
        """``fn(W)`` for a map that acts on a wide factor column by column (a small matrix
        applied from the left: a triangular solve, a product), with the identity at the columns
        ``skeleton`` when given (an interpolation matrix, k x n)."""
        out = fn(W)
        return out if skeleton is None else self.be.identity_at(out, skeleton)

    def skeleton_gram(self, C, S):
        """``C^H A`` (k x n) for the skeleton columns ``C = A[:, S]`` (the optimal solve's
        extra pass): a kind may take it without gathering C first."""
        return self.left_matmat(ctranspose(self.xp, C))

    def inner(self, W, Q):
        """``W @ Q`` of a wide factor (p x n) and a tall one (n x q): small."""
        return self.be.matmul(W, Q)

    def tall_qr(self, C, YS=None):
        """Reduced QR ``C = Q R`` of a tall factor (with its sketch ``YS``, see
        :func:`~lowrank._linalg.skeleton_qr`)."""
        return skeleton_qr(self.be, self.xp, C, YS)

    def pivot_rows(self, M, k, rule):
        """The first k pivots among the rows of a tall factor M: LU with partial pivoting of M
        (``"lu"``), or column-pivoted QR of ``M^T`` (``"qr"``)."""
        be = self.be
        return be.lu(M)[1][:k] if rule == "lu" else be.qr_pivoted(M.T)[1][:k]

    def _block_columns(self) -> int:
        m, n = self.shape
        return max(1, min(n, RESIDUAL_BLOCK_BYTES // max(1, 16 * m)))


class DenseOperand(Operand):
    """A dense 2-D array of any array-API library, through its backend ``be``."""

    kind = "dense"
    cheap_columns = True
    description = "a dense array"

    def __init__(self, xp, be, A):
        self._setup(xp, be, A.shape, A.dtype, array_api_compat.device(A))
        self.A = A

    @property
    def T(self) -> DenseOperand:
        """The operand of ``A.T`` (plain transpose, also for complex A): a view."""
        return DenseOperand(self.xp, self.be, self.A.T)

    # -- norms -----------------------------------------------------------------------------------
    def sqnorm(self) -> float:
        """``||A||_F^2`` as a Python float, summed in double precision."""
        return self.be.sqnorm(self.A)

    def col_sqnorms(self):
        """Squared 2-norms of the columns (real, of A's precision)."""
        return col_sqnorms(self.xp, self.A)

    def max_abs(self) -> float:
        """``max |a_ij|`` as a Python float (NaN if A holds a NaN)."""
        return self.be.max_abs(self.A)

    def scaled(self, factor: float) -> DenseOperand:
        """The operand of ``factor * A`` (a copy); exact for a power of two in range."""
        return DenseOperand(self.xp, self.be, self.A * factor)

    # -- products --------------------------------------------------------------------------------
    def sketch_rows(self, rng, l, kind="gaussian"):
        """``Omega @ A`` (l x n) for a random l x m sketching operator (see :mod:`._sketch`)."""
        return sketch_rows(self.be, self.xp, rng, self.A, l, kind)

    def matmat(self, X):
        """``A @ X``."""
        return self.be.matmul(self.A, X)

    def left_matmat(self, W):
        """``W @ A`` (W is p x m)."""
        return self.be.matmul(W, self.A)

    def rmatmat(self, Y):
        """``A^H @ Y``, as ``(Y^H A)^H``: no conjugated copy of A."""
        xp = self.xp
        return ctranspose(xp, self.be.matmul(ctranspose(xp, Y), self.A))

    # -- gathers ---------------------------------------------------------------------------------
    def columns(self, J, keep=False):
        """``A[:, J]`` as a dense array (m x len(J)); ``keep`` (the caller reads them several
        times) changes nothing in memory."""
        return self.be.take(self.A, J, axis=1)

    def rows(self, J):
        """``A[J, :]`` as a dense array (len(J) x n)."""
        return self.be.take(self.A, J, axis=0)

    def take(self, J, axis):
        """``A[:, J]`` (axis 1) or ``A[J, :]`` (axis 0) in the operand's own kind."""
        return self.be.take(self.A, J, axis=axis)

    def skeleton_matrix(self, X, J, axis, scale=1.0):
        """The gather X itself where A was not scaled (else gathered again, exact)."""
        return X if scale == 1.0 else self.take(J, axis)

    def block(self, j, e):
        return self.A[:, j:e]

    def whole(self):
        return self

    def dense(self):
        """A itself (for the methods that factor A whole)."""
        return self.A


class SparseOperand(Operand):
    """A sparse matrix or array (``scipy.sparse``, any format and either family, or
    ``cupyx.scipy.sparse``), never densified: kept in CSR for row access and products ``A X``,
    and in CSC for column access and ``W A`` (each made once, when first needed).

    Gathers come back dense for the algorithms (m x k at most) and, through :meth:`take`, sparse
    for the caller, in the input's format and family (a ``csr_matrix`` gives ``csr_matrix``
    skeletons, a ``csr_array`` gives ``csr_array``)."""

    kind = "sparse"
    description = "a sparse matrix"

    def __init__(self, xp, be, A, fmt=None):
        self.fmt = fmt or A.format
        self._csr = A if A.format == "csr" else None
        self._csc = A if A.format == "csc" else None
        if self._csr is None and self._csc is None:
            self._csr = A.tocsr()
        self._setup(xp, be, A.shape, A.dtype, array_api_compat.device(self._any().data))

    @property
    def csr(self):
        if self._csr is None:
            self._csr = self._csc.tocsr()
        return self._csr

    @property
    def csc(self):
        if self._csc is None:
            self._csc = self._csr.tocsc()
        return self._csc

    def _any(self):
        return self._csr if self._csr is not None else self._csc

    @property
    def T(self) -> SparseOperand:
        """The operand of ``A.T`` (plain transpose): CSR and CSC swap, nothing is copied."""
        t = SparseOperand.__new__(SparseOperand)
        t._setup(self.xp, self.be, self.shape[::-1], self.dtype, self.device)
        t.fmt = self.fmt
        t._csr = None if self._csc is None else self._csc.T
        t._csc = None if self._csr is None else self._csr.T
        return t

    # -- norms -----------------------------------------------------------------------------------
    def _abs2(self, data):
        xp = self.xp
        if xp.isdtype(data.dtype, "complex floating"):
            return xp.real(data) ** 2 + xp.imag(data) ** 2
        return data * data

    def sqnorm(self) -> float:
        xp = self.xp
        data = self._any().data
        with _quiet():
            return float(xp.sum(xp.astype(self._abs2(xp.asarray(data)), xp.float64)))

    def col_sqnorms(self):
        xp = self.xp
        csc = self.csc
        sq = csc.copy()
        sq.data = self._abs2(xp.asarray(csc.data))
        return xp.reshape(xp.asarray(sq.sum(axis=0)), (-1,))

    def max_abs(self) -> float:
        xp = self.xp
        data = xp.asarray(self._any().data)
        return float(xp.max(xp.abs(data))) if data.shape[0] else 0.0

    def scaled(self, factor: float) -> SparseOperand:
        return SparseOperand(self.xp, self.be, self._any() * factor, self.fmt)

    # -- products --------------------------------------------------------------------------------
    def sketch_rows(self, rng, l, kind="gaussian"):
        """``Omega @ A`` as ``(A^T Omega^T)^T``: one sparse-times-dense product, ``O(nnz l)``
        (Gaussian), or a sparse-times-sparse one (sparse-sign)."""
        if kind == "gaussian":
            return super().sketch_rows(rng, l, kind)
        from ._sketch import SPARSE_SIGN_NNZ

        xp, be = self.xp, self.be
        m = self.shape[0]

        rows, signs = be.sparse_sign_pattern(rng, l, m, SPARSE_SIGN_NNZ)
        # the operator as a CSR matrix of A's own library and family
        values = xp.asarray(signs.ravel(), dtype=real_dtype(xp, self.dtype), device=self.device)
        ij = (xp.asarray(rows.ravel(), device=self.device),
              xp.asarray(_repeat(m, rows.shape[1]), device=self.device))
        omega = type(self.csr)((values, ij), shape=(l, m))
        return xp.asarray((omega @ self.csr).toarray(), dtype=self.dtype)

    def matmat(self, X):
        return self.xp.asarray(self.csr @ X)

    def left_matmat(self, W):
        # (A^T W^T)^T: A^T in CSR is the transpose of A's CSC, no copy
        xp = self.xp
        return xp.asarray(self.csc.T @ W.T).T

    # -- gathers ---------------------------------------------------------------------------------
    def columns(self, J, keep=False):
        return self.xp.asarray(self.csc[:, _host_index(J)].toarray())

    def rows(self, J):
        return self.xp.asarray(self.csr[_host_index(J), :].toarray())

    def take(self, J, axis):
        part = self.csc[:, _host_index(J)] if axis == 1 else self.csr[_host_index(J), :]
        return part.asformat(self.fmt)

    def block(self, j, e):
        return self.xp.asarray(self.csc[:, j:e].toarray())

    def whole(self):
        return DenseOperand(self.xp, self.be, self.xp.asarray(self._any().toarray()))


class OperatorOperand(Operand):
    """A matrix known only through products: ``matmat(X) = A @ X`` and ``rmatmat(Y) = A^H @ Y``
    (a ``scipy.sparse.linalg.LinearOperator``, or anything with those two methods, a ``shape``
    and a ``dtype``), NumPy arrays in and out.

    Its entries come from products with identity columns: a gather of k columns is one
    ``matmat`` with k vectors, one of rows one ``rmatmat``, and a *pass over A* (the column norms,
    ``||A||_F``, a residual) reads all n columns in blocks of identity columns (memory-bounded by
    :data:`RESIDUAL_BLOCK_BYTES`, so as many products with A as A has columns, in blocks)."""

    kind = "operator"
    description = "an operator known by its products"

    def __init__(self, xp, be, op, dtype, transposed=False, factor=1.0):
        shape = tuple(int(s) for s in op.shape)
        self._setup(xp, be, shape[::-1] if transposed else shape, dtype, "cpu")
        self.op, self.transposed, self.factor = op, transposed, factor
        self._scan = None

    def _raw(self, X, adjoint):
        """``A X`` (or ``A^H X``) of the wrapped operator, as a 2-D array of our dtype."""
        import numpy as np

        f = self.op.rmatmat if adjoint else self.op.matmat
        Y = np.asarray(f(np.asarray(X)))
        rows = self.op.shape[1] if adjoint else self.op.shape[0]
        Y = Y.reshape(rows, -1) if Y.ndim == 1 else Y
        # our dtype, or complex where X is (a real operator applied to a complex block)
        dtype = np.result_type(self.dtype, getattr(X, "dtype", self.dtype))
        Y = Y.astype(dtype, copy=False) if Y.dtype != dtype else Y
        return Y * self.factor if self.factor != 1.0 else Y

    def matmat(self, X):
        if not self.transposed:
            return self._raw(X, False)
        xp = self.xp  # A^T X = conj(A^H conj(X))
        return _conj(xp, self._raw(_conj(xp, X), True))

    def rmatmat(self, Y):
        if not self.transposed:
            return self._raw(Y, True)
        xp = self.xp  # (A^T)^H Y = conj(A) Y = conj(A conj(Y))
        return _conj(xp, self._raw(_conj(xp, Y), False))

    def left_matmat(self, W):
        xp = self.xp
        return ctranspose(xp, self.rmatmat(ctranspose(xp, W)))

    @property
    def T(self) -> OperatorOperand:
        return OperatorOperand(self.xp, self.be, self.op, self.dtype, not self.transposed,
                               self.factor)

    def scaled(self, factor: float) -> OperatorOperand:
        return OperatorOperand(self.xp, self.be, self.op, self.dtype, self.transposed,
                               self.factor * factor)

    def _identity(self, J, size):
        xp = self.xp
        return xp.astype(xp.arange(size)[:, None] == xp.asarray(J)[None, :], self.dtype)

    def columns(self, J, keep=False):
        return self.matmat(self._identity(J, self.shape[1]))

    def rows(self, J):
        return ctranspose(self.xp, self.rmatmat(self._identity(J, self.shape[0])))

    def take(self, J, axis):
        return self.columns(J) if axis == 1 else self.rows(J)

    def skeleton_matrix(self, X, J, axis, scale=1.0):
        return X if scale == 1.0 else X * (1.0 / scale)  # exact: no products again

    def block(self, j, e):
        xp = self.xp
        return self.columns(xp.arange(j, e))

    def whole(self):
        """A read by products with blocks of identity vectors along its short side (rows by
        ``rmatmat`` where A is wide: min(m, n) products in all, as a sketch of that many rows)."""
        xp = self.xp
        m, n = self.shape
        if m <= n:
            step = max(1, RESIDUAL_BLOCK_BYTES // max(1, 16 * n))
            A = xp.concat([self.rows(xp.arange(i, min(m, i + step))) for i in range(0, m, step)],
                          axis=0)
        else:
            A = xp.concat([self.block(j, min(n, j + self._block_columns()))
                           for j in range(0, n, self._block_columns())], axis=1)
        return DenseOperand(xp, self.be, A)

    def _columns_scan(self):
        """One pass: the column norms and ``max |a_ij|`` (made once)."""
        if self._scan is None:
            xp = self.xp
            n, cols = self.shape[1], self._block_columns()
            norms, amax = [], 0.0
            with _quiet():
                for j in range(0, n, cols):
                    blk = self.block(j, min(n, j + cols))
                    norms.append(col_sqnorms(xp, blk))
                    amax = max(amax, float(xp.max(xp.abs(blk))))
            self._scan = (xp.concat(norms), amax)
        return self._scan

    def col_sqnorms(self):
        return self._columns_scan()[0]

    def sqnorm(self) -> float:
        xp = self.xp
        return float(xp.sum(xp.astype(self.col_sqnorms(), xp.float64)))

    def max_abs(self) -> float:
        return self._columns_scan()[1]



def make_operand(xp, be, A, kind, name="A"):
    """The operand of a validated input of the given kind (:func:`lowrank._namespace.resolve`):
    a floating dense array, a sparse matrix, or an operator."""
    if kind == "sparse":
        return SparseOperand(xp, be, _floating_sparse(A, name))
    if kind == "operator":
        return OperatorOperand(xp, be, A, _operator_dtype(A, name))
    return DenseOperand(xp, be, A)


def _floating_sparse(A, name):
    """A sparse matrix of a supported floating dtype (integers and booleans to float64, float16
    to float32), 2-D and non-empty; never the caller's object modified."""
    import numpy as np

    if len(A.shape) != 2 or 0 in A.shape:
        raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {tuple(A.shape)}")
    dtype = _floating(np.dtype(A.dtype), name)
    return A if dtype == A.dtype else A.astype(dtype)


def _floating(dtype, name):
    """The supported floating dtype an input of ``dtype`` is decomposed in (as for arrays:
    integers to float64, float16 to float32, longer floats to float64; booleans and
    non-numbers a TypeError)."""
    import numpy as np

    if dtype.kind in "iu":
        return np.dtype(np.float64)
    if dtype.kind not in "fc":
        raise TypeError(f"{name} must have a numeric dtype, got {dtype}")
    if dtype.kind == "f":
        return np.dtype(np.float32 if dtype.itemsize < 4 else dtype if dtype.itemsize <= 8
                        else np.float64)
    return dtype if dtype.itemsize <= 16 else np.dtype(np.complex128)


def _operator_dtype(op, name):
    import numpy as np

    if len(op.shape) != 2 or 0 in op.shape:
        raise ValueError(f"{name} must have a non-empty 2-D shape, got {tuple(op.shape)}")
    return _floating(np.dtype(op.dtype if getattr(op, "dtype", None) is not None else np.float64),
                     name)


def _wide_dtype(xp, dtype):
    """The double-precision dtype of A's kind (complex128 for complex A)."""
    return xp.complex128 if xp.isdtype(dtype, "complex floating") else xp.float64


def _conj(xp, a):
    return xp.conj(a) if xp.isdtype(a.dtype, "complex floating") else a


def _host_index(J):
    """Indices as a host integer array (sparse libraries index with their own arrays)."""
    import numpy as np

    try:
        return np.asarray(J, dtype=np.int64)
    except TypeError:  # device indices for a device sparse matrix
        return J


def _repeat(m, times):
    import numpy as np

    return np.repeat(np.arange(m), times)


class _quiet:
    """NumPy's floating-point warnings off (squares of huge entries overflow quietly: the front
    door rescales)."""

    def __enter__(self):
        import numpy as np

        self._state = np.seterr(over="ignore", under="ignore", invalid="ignore")

    def __exit__(self, *exc):
        import numpy as np

        np.seterr(**self._state)
