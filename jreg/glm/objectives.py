r"""A datafit on data, ready for a solver: the one place where the solver is chosen.

:func:`problem` binds a :class:`~jreg.glm.datafits.Datafit` and a
:class:`~jreg.glm.penalties.Penalty` to the data and chooses, from what they offer, how each
strength is solved:

========================= ================================= ====================================
datafit                   penalty                           solver
========================= ================================= ====================================
quadratic, one output     separable with zeros              coordinate descent on the Gram
                                                            matrix (:math:`n \ge p`) or ``X``
                                                            (+ Newton steps)
quadratic, :math:`n\ge p` any other                         FISTA on the Gram matrix (+ Newton
                                                            steps where the penalty has them)
any other                 separable                         proximal Newton
any other                 not separable                     FISTA on ``X`` (steps from the
                                                            curvature bound, or backtracking)
========================= ================================= ====================================

Without ``coordinate_descent`` (on accelerators, where each coordinate's update is a kernel
launch of its own and a whole-vector step costs about as much) the squared loss's separable
penalties run FISTA too, on the Gram matrix or ``X`` (with the Newton steps). Proximal Newton
keeps its coordinate steps there: on ill-conditioned data FISTA needs far more iterations for
the other datafits (logistic on breast cancer x interactions on an H200: 8 of 30 strengths at
``max_iter``, where proximal Newton reached all).

With an intercept the features are centred with the sample weights, :math:`X w + b = X_c w +
(b + \bar x^\top w)` (the intercept is unpenalized, so the problems are the same), which makes
a bound on the Hessian block-diagonal; the reported intercept is :math:`b - \bar x^\top w`.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jreg._checks import is_traced
from jreg.glm import solvers, sparse
from jreg.glm.datafits import Datafit
from jreg.glm.penalties import Penalty
from jreg.glm.solvers import Design, Evaluation, Smooth

_COMPLEMENT_FROM = 128  # (Gram form) more features: Newton systems on the complement
_INTERCEPT_STEPS = 50  # Newton steps of the intercept-only fit
_CENTRING_DIGITS = 4  # (host_gram) the most decimal digits its centring may cancel


class Data(NamedTuple):
    X: jax.Array  # (n, p)
    y: jax.Array  # (n, m) targets in the datafit's encoding
    weights: jax.Array  # (n,) non-negative, summing to one
    offset: jax.Array | None = None  # (n, m) added to the linear predictor (in the datafit)


@dataclasses.dataclass(frozen=True, eq=False)
class Moments:
    r"""A dense ``X`` as the Gram form reads it, computed on the host (:func:`host_moments`)
    and passed in its place: the program then neither copies nor reads its :math:`np` numbers.
    With the weights :math:`a` and targets :math:`y` it was computed for, :math:`X_0 = X -
    1 \bar x^\top` and :math:`y_0 = y - 1 \bar y^\top` where ``centred`` (the means under
    :math:`a`), else :math:`X` and :math:`y`: ``gram`` :math:`X_0^\top A X_0`, ``mean``
    :math:`X^\top a`, ``correlation`` :math:`X_0^\top A y_0` (``(p, m)``) and
    ``column_max_abs`` :math:`\max_i |x_{ij}|`."""

    gram: jax.Array
    mean: jax.Array
    correlation: jax.Array
    column_max_abs: jax.Array
    n_samples: int
    centred: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_samples, self.mean.shape[0]

    @property
    def dtype(self):
        return self.gram.dtype

    ndim = 2

    @property
    def variance(self) -> jax.Array:
        r"""Each feature's variance under the weights, :math:`\operatorname{diag}(X_0^\top A
        X_0)` with the features centred."""
        return jnp.diag(self.gram) - (0 if self.centred else self.mean**2)

    def scaled(self, scale: jax.Array) -> "Moments":
        """The moments of ``X`` with column ``j`` divided by ``scale[j]``."""
        return dataclasses.replace(
            self, gram=self.gram / (scale[:, None] * scale[None, :]), mean=self.mean / scale,
            correlation=self.correlation / scale[:, None],
            column_max_abs=self.column_max_abs / scale,
        )  # fmt: skip


jax.tree_util.register_dataclass(
    Moments,
    data_fields=["gram", "mean", "correlation", "column_max_abs"],
    meta_fields=["n_samples", "centred"],
)


def is_moments(X) -> bool:
    return isinstance(X, Moments)


def largest_abs(X) -> jax.Array:
    """:func:`sparse.largest_abs` for any ``X`` (:class:`Moments` included)."""
    return jnp.max(X.column_max_abs) if is_moments(X) else sparse.largest_abs(X)


def column_max_abs(X) -> jax.Array:
    """:func:`sparse.column_max_abs` for any ``X`` (:class:`Moments` included)."""
    return X.column_max_abs if is_moments(X) else sparse.column_max_abs(X)


def _weighted_mean(X, a) -> jax.Array:
    """:math:`X^\top a`."""
    return X.mean if is_moments(X) else a @ X


class Problem(NamedTuple):
    """A datafit and a penalty on data, with its solver.

    ``solve(lam, w, b, target, max_iter, warm) -> Solution`` from ``(w, b)`` (``warm``: what
    the last solve carried, or ``warm_start(w, b)``); ``intercept(w, b)`` the reported intercept;
    the objective and the intercept at :math:`w = 0` (the best intercept).
    """

    smooth: Smooth
    solve: Callable
    warm_start: Callable
    intercept: Callable
    value_at_zero: jax.Array
    intercept_at_zero: jax.Array


def problem(datafit: Datafit, penalty: Penalty, data: Data, *, fit_intercept: bool,
            newton: bool = True, coordinate_descent: bool = True,
            gram: jax.Array | None = None) -> Problem:  # fmt: skip
    """The problem of ``datafit`` and ``penalty`` on ``data`` with its solver (see the table of
    the module docstring); ``newton``: active-set Newton steps where the penalty has them;
    ``coordinate_descent``: the squared loss's, where the penalty allows it (else FISTA);
    ``gram``: the Gram matrix of the Gram form (:func:`on_gram`), if already known (see
    :func:`member_gram`)."""
    if not newton:
        penalty = penalty._replace(on_orthant=None)
    if datafit.quadratic and (_gram_form(data) or data.y.shape[1] == 1):
        if not coordinate_descent:
            penalty = penalty._replace(coordinate_prox=None)
        return _squared(data, penalty, fit_intercept=fit_intercept, gram=gram)
    return _generic(datafit, data, penalty, fit_intercept=fit_intercept)


def _gram_form(data: Data) -> bool:
    """Whether the squared loss is solved on the Gram matrix (else on ``X``'s columns)."""
    n, p = data.X.shape
    return n >= p and not sparse.is_sparse(data.X)  # a sparse X is solved on its columns


def on_gram(datafit: Datafit, data: Data) -> bool:
    """Whether :func:`problem` forms the weighted Gram matrix of the (centred) features."""
    return datafit.quadratic and _gram_form(data)


class SharedGram(NamedTuple):
    r"""The weighted Gram matrix of all the rows, from which :func:`member_gram` forms those of
    subsets of them: ``total`` :math:`X_0^\top \mathrm{diag}(a) X_0` with :math:`X_0 = X -
    1 \mu^\top`, ``mean`` :math:`\mu = X^\top a / \sum_i a_i`, and ``X``."""

    total: jax.Array
    mean: jax.Array
    X: jax.Array


def shared_gram(data: Data, total: jax.Array | None = None) -> SharedGram:
    """:class:`SharedGram` of ``data`` (its weights, all rows); ``total``: its centred Gram
    matrix, if known (:func:`host_gram`)."""
    a = data.weights
    mean = a @ data.X / jnp.sum(a)
    total = _centred_products(data.X, mean, a)[0] if total is None else total
    return SharedGram(total, mean, data.X)


def member_gram(shared: SharedGram, full, weights, *, dropped: int, fit_intercept: bool):
    r"""The Gram matrix :func:`problem` forms for sample ``weights`` (``full``, the weights of
    ``shared``, on a subset of the rows, normalized; at most ``dropped`` rows of positive
    ``full`` weight left out) from ``shared``, by removing the rows left out, :math:`R`: with
    :math:`s = \sum_{i \notin R} a_i` and :math:`m = -X_{0R}^\top a_R / s` (the mean of the
    rows kept, from :math:`\mu`), :math:`X_0^\top A' X_0 = (X_0^\top A X_0 - X_{0R}^\top A_R
    X_{0R}) / s`, minus :math:`m m^\top` where the features are centred (an intercept), plus
    :math:`\mu m^\top + m \mu^\top + \mu \mu^\top` where not (:math:`X^\top A' X`).
    :math:`O(|R| p^2)`, against :math:`O(n p^2)`: a cross-validation's folds cost one Gram
    matrix in all."""
    n, mu = full.size, shared.mean
    left_out = solvers.first_true((weights == 0) & (full > 0), dropped, n)
    rows = shared.X.at[left_out].get(mode="fill", fill_value=0)
    a = full.at[left_out].get(mode="fill", fill_value=0)  # 0 on the padding
    kept = jnp.sum(full) - jnp.sum(a)
    left_gram, left_sum = _centred_products(rows, mu, a, jnp.ones((dropped, 1), a.dtype))
    gram = (shared.total - left_gram) / kept
    m = -left_sum[:, 0] / kept
    if fit_intercept:
        return gram - m[:, None] * m[None, :]
    cross = mu[:, None] * m[None, :]
    return gram + (cross + cross.T) + mu[:, None] * mu[None, :]  # exactly symmetric


def host_gram(data: Data, *, centred: bool) -> np.ndarray | None:
    r"""The Gram matrix :func:`problem` forms in its program, :math:`X_0^\top \mathrm{diag}(a)
    X_0` (:math:`X_0 = X - 1 \mu^\top` where ``centred``, else ``X``), computed by the host's
    BLAS where it can be, to pass as ``gram`` (or as :func:`shared_gram`'s ``total``). numpy's
    ``X.T @ X`` is a symmetric rank-k update, half the arithmetic of a product (XLA has none:
    its blocks cost three quarters of it), on the host's threads: 20000 x 300 46 ms against 96
    ms in XLA, 2000 x 500 13 against 24 ms; whole 20000 x 300 lasso paths 0.16-0.18 -> 0.14-0.16
    s (2000 x 500 and 5000 x 200: within noise). Where: ``X`` concrete, dense, float64, on the
    host (numpy, with a CPU the default device, or a jax array on one CPU device), uniform
    weights, and :math:`\mu_j^2 \le 10^4 \operatorname{var}_j` where ``centred`` (then
    :math:`X^\top X / n - \mu \mu^\top` cancels at most :data:`_CENTRING_DIGITS` digits).
    Else ``None``: the program forms it, exactly centred."""
    products = host_products(data, centred=centred)
    return None if products is None else products[1]


def host_products(data: Data, *, centred: bool):
    r"""``(X, gram, mean)`` of :func:`host_gram` (``X`` the host's array, ``mean`` :math:`\mu`),
    or ``None``: what :func:`host_gram` and :func:`host_moments` are made of."""
    X, a = data.X, data.weights
    if not _gram_form(data) or is_traced((X, a)) or X.dtype != np.float64:
        return None
    if not on_cpu(X) or (not _is_host(X) and len(X.devices()) != 1):
        return None
    a = np.asarray(a)
    if np.any(a != a[0]):
        return None
    X = np.asarray(X)  # the device buffer itself (no copy on the CPU)
    gram, mean = (X.T @ X) * a[0], np.mean(X, axis=0)
    if not centred:
        return X, gram, mean
    centred_gram = gram - mean[:, None] * mean[None, :]
    if np.any(mean**2 > 10.0**_CENTRING_DIGITS * np.diag(centred_gram)):
        return None
    return X, centred_gram, mean


def _is_host(X) -> bool:
    return isinstance(X, np.ndarray)


def on_cpu(X) -> bool:
    """Whether ``X`` is computed on the CPU, where coordinate descent's one-coordinate updates
    are cheap; on an accelerator each is a kernel launch of its own, and FISTA's whole-vector
    steps solve the squared loss's paths many times faster (10-fold CV of a 10000 x 1000 lasso
    on an H200: 0.68 s against 8.0 s). Traced or on the host (numpy), the computation's default
    device decides."""
    values = sparse.values(X)
    if not is_traced(values) and not _is_host(values):
        return all(device.platform == "cpu" for device in values.devices())
    default = jax.config.jax_default_device
    return (getattr(default, "platform", default) or jax.default_backend()) == "cpu"


def _default_device():
    """Where a computation on arrays not committed to a device runs (``jax_default_device``: a
    device, a platform's name, or None for the default backend's first device)."""
    default = jax.config.jax_default_device
    return jax.devices(default)[0] if default is None or isinstance(default, str) else default


def host_moments(data: Data, products, *, centred: bool,
                 standardized: bool) -> Moments | None:  # fmt: skip
    r""":class:`Moments` of ``data`` from its :func:`host_products` (``None``: not formed, as
    where :func:`host_gram` forms no Gram matrix), where ``X`` (a jax array) is on the default
    device (where the program on them runs), ``y`` is concrete and, where ``centred``,
    :math:`\bar y_k^2 \le 10^4 \operatorname{var}(y_k)` (:math:`X^\top A y_0` with :math:`y_0`
    centred then loses at most :data:`_CENTRING_DIGITS` digits to the features' means), and
    where ``standardized`` (the variances taken from ``gram``), not ``centred``, :math:`\mu_j^2
    \le 10^4 \operatorname{var}_j` (as :func:`host_gram` asks where centred: the variance of a
    constant feature is then 0, not a rounding error); else ``None``. The program then reads
    ``X`` nowhere: a 20000 x 300 lasso path skips the copy of ``X`` to the device (12 ms) and
    its passes over it (10 ms), for the two here (``X^T A y_0``, the columns' extremes: 6 ms)."""
    if products is None or is_traced(data.y):
        return None
    if not _is_host(data.X) and data.X.devices() != {_default_device()}:
        return None
    X, gram, mean = products
    if standardized and not centred:
        variance = np.diag(gram) - mean**2
        if np.any(mean**2 > 10.0**_CENTRING_DIGITS * variance):
            return None
    a, y = np.asarray(data.weights), np.asarray(data.y)
    y_mean = a @ y if centred else np.zeros(y.shape[1])
    y0 = y - y_mean
    if centred and np.any(y_mean**2 > 10.0**_CENTRING_DIGITS * (a @ y0**2)):
        return None
    x_mean = mean if centred else np.zeros_like(mean)
    correlation = X.T @ (a[:, None] * y0) - x_mean[:, None] * (a @ y0)[None, :]
    column_max_abs = np.maximum(np.max(X, axis=0), -np.min(X, axis=0))
    return Moments(gram, mean, correlation, column_max_abs, X.shape[0], centred)


# --------------------------------------------------------------------------------------------
# The squared loss, solved through its Gram matrix or its residual.


def _squared_dual(r_y, r_r, kappa):
    """The squared loss's part of the dual objective, from ``<r, y_c>_a`` and ``||r||_a^2``."""
    return kappa * r_y - kappa**2 * r_r / 2


def _centred_products(X, mean, a, V=None, *, gram: bool = True):
    r"""``(G, P)``: :math:`G = X_0^\top \operatorname{diag}(a) X_0` (exactly symmetric; ``None``
    without ``gram``) and :math:`P = X_0^\top \operatorname{diag}(a) V` (``V (n, m)``; ``None``
    without ``V``), :math:`X_0 = X - 1 \mu^\top` (``mean`` :math:`\mu`), summed over blocks of
    rows :math:`B` (:func:`~jreg.glm.solvers.sum_over_samples`) as :math:`Z_B^\top Z_B` and
    :math:`Z_B^\top \operatorname{diag}(\sqrt{a_B}) V_B` with :math:`Z_B = \operatorname{diag}
    (\sqrt{a_B}) X_{0B}` (:func:`~jreg.glm.solvers.symmetric_product`): the centring exact (no
    cancellation in float32), and no centred copy of ``X`` (a 20000 x 300 float64 path's
    program: 50 -> 8 MB)."""
    root = jnp.sqrt(a)

    def block(start, size, counted):
        part = functools.partial(jax.lax.dynamic_slice_in_dim, start_index=start, slice_size=size)
        r = jnp.where(counted, 0, part(root))[:, None]
        z = r * (part(X) - mean[None, :])
        other = None if V is None else r * part(V)
        if gram:
            return solvers.symmetric_product(z, other)
        return None, jnp.tensordot(z, other, axes=(0, 0))

    G, P = solvers.sum_over_samples(block, X.shape[0])
    return G if G is None else (G + G.T) / 2, P


def _squared_on_gram(gram: jax.Array, corr: jax.Array, y_sq: jax.Array, *, complement) -> Smooth:
    """Squared loss in Gram form: every evaluation is one product with the p x p Gram matrix
    (``corr (p, m)``: m outputs). ``complement``: with the inverse of ``G + shift I``, for
    Newton steps on large supports ``S`` (those on ``G_SS + shift I``): ``shift = 10 eps tr G``
    where ``lipschitz * trace(inverse)``, at least the condition number (and at most p times
    it), is then at most ``1 / sqrt(eps)``; else (a singular or nearly singular ``G``: collinear
    features, or ``n <= p`` with an intercept) ``shift = sqrt(eps) lipschitz``, which bounds the
    condition number by that: the inverse is then accurate to about ``sqrt(eps)``, and the steps
    within ``shift / lambda_min(G_SS)`` of Newton's."""
    p, m = corr.shape
    zero = jnp.zeros(m, gram.dtype)
    flat_corr = corr.reshape(-1)

    def evaluate(w, b):
        grad = (gram @ w.reshape(p, m)).reshape(-1) - flat_corr
        r_y = y_sq - flat_corr @ w  # <r, y_c>_a
        r_r = r_y + grad @ w  # ||r||_a^2 = y_sq - 2 corr.w + w.G.w
        return Evaluation(r_r / 2, grad, zero, jax.tree_util.Partial(_squared_dual, r_y, r_r))

    def feasible(evaluation, w, index):
        r"""The residual after the exact minimization over the coordinates ``index`` (see
        :func:`solvers.gap_at`), from the Gram matrix: :math:`r' = r + X_U \delta`."""
        feature, output = index // m, index % m
        onehot = output[:, None] == jnp.arange(m)[None, :]
        columns = gram.at[:, feature].get(mode="fill", fill_value=0)  # (p, K)
        same = output[:, None] == output[None, :]
        block = columns.at[feature].get(mode="fill", fill_value=0) * same
        rhs = evaluation.grad_w.at[index].get(mode="fill", fill_value=0)
        delta = solvers.free_solve(block, rhs)
        grad = evaluation.grad_w - (columns @ (delta[:, None] * onehot)).reshape(-1)
        r_y = y_sq - flat_corr @ w  # as in evaluate, then moved: ||r'||^2 = ||r||^2 - delta.rhs
        r_r = r_y + evaluation.grad_w @ w - delta @ rhs
        r_y = r_y + delta @ flat_corr.at[index].get(mode="fill", fill_value=0)
        dual = jax.tree_util.Partial(_squared_dual, r_y, r_r)
        return evaluation._replace(grad_w=grad.at[index].set(0, mode="drop"), dual=dual)

    def hessian_block(data, index):
        return data[0].at[index[:, None], index[None, :]].get(mode="fill", fill_value=0)

    top = lambda: solvers.top_eigenvalue(lambda v: gram @ v, p, gram.dtype)  # noqa: E731
    lipschitz = top()  # FISTA's step (coordinate descent's programs drop it)
    if m > 1:  # no Newton steps: its systems are per output
        return Smooth(evaluate, lipschitz, quadratic=True, feasible=feasible)
    size = min(solvers._NEWTON_MAX, p)
    if not complement:
        return Smooth(evaluate, lipschitz, quadratic=True, hessian_block=hessian_block,
                      hessian_data=(gram,), newton_size=size, feasible=feasible)  # fmt: skip
    eps = jnp.finfo(gram.dtype).eps
    identity = jnp.eye(p, dtype=gram.dtype)
    shifted = lambda shift: solvers.cholesky_solve(gram + shift * identity, identity)  # noqa: E731
    inverse = shifted(10 * eps * jnp.trace(gram))
    # trace(inverse) bounds its top eigenvalue: lipschitz * trace bounds the condition number;
    # trace(gram) bounds lipschitz: no power iteration (1.8 ms at p = 500) where that bound holds,
    # mean(eigenvalues) * mean(1 / eigenvalues) <= 1 / (p^2 sqrt(eps))
    limit = 1 / jnp.sqrt(eps)

    def checked(inverse):
        bound = top()
        accurate = bound * jnp.trace(inverse) <= limit
        return solvers.maybe(~accurate, lambda _: shifted(jnp.sqrt(eps) * bound), inverse)

    inverse = solvers.maybe(jnp.trace(gram) * jnp.trace(inverse) > limit, checked, inverse)
    largest = min(solvers._NEWTON_MAX, (p - 1) // 2)  # a complement is the smaller part: < p / 2
    return Smooth(evaluate, lipschitz, quadratic=True, hessian_block=hessian_block,
                  hessian_data=(gram, inverse), newton_size=size,
                  complement_size=largest, feasible=feasible)  # fmt: skip


def _support_size(rows) -> int:
    """The largest support whose products read only its rows and whose Newton systems are
    solved (X form): a lasso solution has at most n non-zeros (Tibshirani, 2013), larger
    systems are singular."""
    return min(solvers._NEWTON_MAX, rows.shape[0], rows.shape[1] + solvers._NEWTON_ENTERING)


def _squared_on_rows(rows, yc, a, lipschitz, diagonal) -> Smooth:
    """Squared loss of one output through the residual; ``rows`` are the centred features
    transposed, ``(p, n)``, ``diagonal`` the Hessian's."""
    zero = jnp.zeros(1, yc.dtype)
    size = _support_size(rows)

    def evaluate(w, b):
        r = yc - solvers.support_product(w, rows, size)
        r_y, r_r = a @ (r * yc), a @ r**2
        grad = -(rows @ (a * r))
        return Evaluation(r_r / 2, grad, zero, jax.tree_util.Partial(_squared_dual, r_y, r_r))

    def feasible(evaluation, w, index):
        """The residual after the exact minimization over the coordinates ``index`` (see
        :func:`solvers.gap_at`; the gradient of the loss in ``z`` is ``-r``)."""
        r = yc - solvers.support_product(w, rows, size)
        unit = (jnp.ones_like(r)[:, None], None)
        g, grad = solvers.feasible_gradient(rows, a, -r[:, None], unit, index, intercept=False)
        r_y, r_r = a @ (-g[:, 0] * yc), a @ g[:, 0] ** 2
        dual = jax.tree_util.Partial(_squared_dual, r_y, r_r)
        return evaluation._replace(grad_w=grad, dual=dual)

    def value(w, b):  # the residual's part of an evaluation (XLA drops the gradient's product)
        return evaluate(w, b).loss

    if sparse.is_sparse(rows):  # no Newton steps: their blocks would be dense (measured: the
        # steps cost 5x the epochs they save on a 2000 x 5000 matrix with 1e5 non-zeros)
        return Smooth(evaluate, lipschitz, quadratic=True, value=value, feasible=feasible)
    p = rows.shape[0]
    # the factor's jitter: as a relative one on a block of ``size`` of the largest diagonal
    jitter = 10 * jnp.finfo(rows.dtype).eps * size * jnp.max(diagonal)
    return Smooth(evaluate, lipschitz, quadratic=True, hessian_data=(rows, a, jitter),
                  value=value, factor_plan=functools.partial(solvers.factor_plan, size=size),
                  factor_step=lambda data, *args: solvers.factor_step(*data, *args),
                  newton_size=size, factor=solvers.empty_factor(size, p, rows.dtype),
                  feasible=feasible)  # fmt: skip


def _fista(smooth: Smooth, penalty: Penalty) -> tuple[Callable, Callable]:
    """FISTA's ``solve`` and ``warm_start`` (it carries nothing from one strength to the next)."""

    def solve(lam, w, b, target, max_iter, warm):
        return solvers.fista(smooth, penalty, lam, w, b, target, max_iter)

    return solve, lambda w, b: None


def _lasso(penalty: Penalty, dtype) -> bool:
    """Whether the penalty's Newton quadratic has no curvature (the lasso): then a Newton
    system on a large support may be solved on its complement from the inverse Gram matrix."""
    if penalty.on_orthant is None:
        return False
    one = jnp.ones(1, dtype)
    return penalty.on_orthant(one, one, one)[1] is None


def _squared(data: Data, penalty: Penalty, *, fit_intercept: bool,
             gram: jax.Array | None) -> Problem:  # fmt: skip
    X, y, a = data.X, data.y, data.weights
    n, p = X.shape
    m = y.shape[1]
    x_mean = _weighted_mean(X, a) if fit_intercept else jnp.zeros(p, X.dtype)
    y_mean = a @ y if fit_intercept else jnp.zeros(m, X.dtype)
    yc = y - y_mean[None, :]
    y_sq = jnp.sum(a @ yc**2)

    if _gram_form(data):  # the p x p Gram matrix for the steps and the evaluations
        # below _COMPLEMENT_FROM features every system is small: not worth inverting
        complement = _lasso(penalty, X.dtype) and p > _COMPLEMENT_FROM
        if is_moments(X):
            gram, corr = X.gram, X.correlation
        else:
            full, corr = _centred_products(X, x_mean, a, yc, gram=gram is None)  # corr (p, m)
            gram = full if gram is None else gram
        smooth = _squared_on_gram(gram, corr, y_sq, complement=complement)
        curvature = jnp.diag(gram)
        sweeps = solvers.Sweeps(
            lambda evaluation, w: evaluation.grad_w, functools.partial(solvers.gram_sweep, gram)
        )
    else:  # X form: steps on the residual
        rows = _centred_rows(X, x_mean)  # (p, n): a feature's column is a contiguous row
        lipschitz = solvers.top_eigenvalue(lambda v: rows @ (a * (v @ rows)), p, X.dtype)
        curvature = sparse.squares_times(rows, a)
        smooth = _squared_on_rows(rows, yc[:, 0], a, lipschitz, curvature)
        sweeps = solvers.Sweeps(
            lambda evaluation, w: yc[:, 0] - solvers.support_product(w, rows, _support_size(rows)),
            functools.partial(sparse.coordinate_sweep, rows, a),
        )

    separable = penalty.violation is not None and penalty.coordinate_prox is not None
    if separable and m == 1:  # coordinate descent on working sets

        def solve(lam, w, b, target, max_iter, warm):
            return solvers.coordinate_descent(
                smooth, sweeps, curvature, penalty, lam, w, b, target, max_iter, warm
            )

        def warm_start(w, b):
            return solvers.first_warm(smooth.evaluate(w, b), smooth.factor)
    else:
        solve, warm_start = _fista(smooth, penalty)

    return Problem(
        smooth=smooth,
        solve=solve,
        warm_start=warm_start,
        intercept=lambda w, b: y_mean - x_mean @ w.reshape(p, m),
        value_at_zero=y_sq / 2,
        intercept_at_zero=y_mean,
    )


# --------------------------------------------------------------------------------------------
# Any other datafit: proximal Newton, or FISTA.


def _intercept_at_zero(datafit: Datafit, data: Data, *, fit_intercept: bool) -> jax.Array:
    """The best intercept at :math:`w = 0` (zero without an intercept)."""
    X, y, a = data.X, data.y, data.weights
    if not fit_intercept:
        return jnp.zeros(y.shape[1], X.dtype)
    if datafit.intercept_at_zero is not None:
        return datafit.intercept_at_zero(y, a)
    return solvers.best_shift(datafit, jnp.zeros_like(y), y, a, _INTERCEPT_STEPS)


def _reported_intercept(datafit: Datafit, x_mean, w, b) -> jax.Array:
    """The intercept of the uncentred features (centred where the loss is shift invariant)."""
    b = b - x_mean @ w.reshape(x_mean.shape[0], -1)
    return b - jnp.mean(b) if datafit.shift_invariant else b


def gradient_at_zero(datafit: Datafit, data: Data, *, fit_intercept: bool) -> jax.Array:
    """The datafit's gradient in :math:`w` at :math:`w = 0` and the best intercept, without
    the set-up of a solver (what ``strength_max`` needs)."""
    X, y, a = data.X, data.y, data.weights
    if is_moments(X):  # the squared loss's gradient at its best intercept is -y_0
        return -X.correlation.reshape(-1)
    b0 = _intercept_at_zero(datafit, data, fit_intercept=fit_intercept)
    x_mean = a @ X if fit_intercept else jnp.zeros(X.shape[1], X.dtype)
    g = datafit.gradient(jnp.broadcast_to(b0, y.shape), y)
    if on_gram(datafit, data):  # by blocks of rows, as the Gram matrix
        return _centred_products(X, x_mean, a, g, gram=False)[1].reshape(-1)
    # on the solver's rows, as its gradient, so that both round alike
    return (_centred_rows(X, x_mean) @ (a[:, None] * g)).reshape(-1)


def _centred_rows(X, mean):
    r"""The solvers' rows :math:`(X - 1 \mu^\top)^\top`, ``(p, n)``: implicitly centred where
    ``X`` is sparse; explicitly where dense (no float32 cancellation), written out by blocks of
    samples (:func:`~jreg.glm.solvers.sample_blocks`) in a loop: XLA:CPU otherwise writes them
    out once for each kind of reader (a 20000 x 300 logistic path's program held three 48 MB
    copies of them). Each block is transposed, then centred (an optimization barrier keeps that
    order): centred first, XLA:CPU wrote ``X - 1 \mu^\top`` and then its transpose, two arrays
    of a single block's ``n p`` (a program's temporaries over glibc's 32 MB mmap threshold take
    fresh pages at every call: at 300 x 10000, 12,000 page faults)."""
    if sparse.is_sparse(X):
        return sparse.centred(X, mean).T
    n, p = X.shape
    blocks, size = solvers.sample_blocks(n)

    def block(k, rows):
        start = solvers.block_start(k, n)
        part = jax.lax.optimization_barrier(jax.lax.dynamic_slice_in_dim(X, start, size).T)
        return jax.lax.dynamic_update_slice_in_dim(rows, part - mean[:, None], start, 1)

    return jax.lax.fori_loop(0, blocks, block, jnp.zeros((p, n), X.dtype))


def _generic(datafit: Datafit, data: Data, penalty: Penalty, *, fit_intercept: bool) -> Problem:
    X, y, a = data.X, data.y, data.weights
    n, p = X.shape
    m = y.shape[1]
    x_mean = a @ X if fit_intercept else jnp.zeros(p, X.dtype)
    rows = _centred_rows(X, x_mean)
    design = Design(rows, y, a, support_size=min(p, max(n, 64)))

    def dual(g, y, a, kappa):  # samples of weight 0 (held out) do not count, even outside
        return -jnp.sum(jnp.where(a > 0, a * datafit.conjugate(kappa * g, y), 0))  # the domain

    def evaluate(w, b) -> Evaluation:
        z = solvers.linear(design, w, b)
        g = datafit.gradient(z, y)
        weighted = a[:, None] * g
        grad_b = jnp.sum(weighted, axis=0) if fit_intercept else jnp.zeros(m, X.dtype)
        conjugate = None if datafit.conjugate is None else jax.tree_util.Partial(dual, g, y, a)
        loss = a @ datafit.loss(z, y)
        return Evaluation(loss, (rows @ weighted).reshape(-1), grad_b, conjugate, z=z)

    def feasible(evaluation, w, index):  # see solvers.gap_at
        z = evaluation.z
        g, grad = solvers.feasible_gradient(rows, a, datafit.gradient(z, y),
                                            datafit.curvature(z, y), index,
                                            intercept=fit_intercept)  # fmt: skip
        dual_at = jax.tree_util.Partial(dual, g, y, a)
        return evaluation._replace(grad_w=grad, grad_b=jnp.zeros(m, X.dtype), dual=dual_at)

    def best_intercept(w, b):
        z = solvers.linear(design, w, b)
        return b + solvers.best_shift(datafit, z, y, a, solvers.POLISH_STEPS)

    b0 = _intercept_at_zero(datafit, data, fit_intercept=fit_intercept)
    at_zero = evaluate(jnp.zeros(p * m, X.dtype), b0)

    if penalty.coordinate_prox is not None or penalty.block_prox is not None:
        solve = functools.partial(solvers.prox_newton, design, datafit, evaluate, penalty,
                                  fit_intercept=fit_intercept, feasible=feasible)  # fmt: skip
        smooth = Smooth(evaluate, jnp.ones((), X.dtype))

        def warm_start(w, b):
            return solvers.newton_warm(design, datafit, penalty, evaluate(w, b))
    else:
        gram_top = solvers.top_eigenvalue(lambda v: rows @ (a * (v @ rows)), p, X.dtype)
        bound = datafit.curvature_bound
        if bound is None:  # a first estimate, the curvature at zero, that backtracking corrects
            dd, _ = datafit.curvature(at_zero.z, y)
            bound = jnp.max(dd)
        smooth = Smooth(
            evaluate,
            lipschitz=bound * gram_top,
            intercept_lipschitz=bound if fit_intercept else 1.0,
            backtrack=datafit.curvature_bound is None,
            best_intercept=best_intercept if fit_intercept else None,
            value=lambda w, b: a @ datafit.loss(solvers.linear(design, w, b), y),
            feasible=feasible,
        )
        solve, warm_start = _fista(smooth, penalty)

    return Problem(
        smooth=smooth,
        solve=solve,
        warm_start=warm_start,
        intercept=functools.partial(_reported_intercept, datafit, x_mean),
        value_at_zero=at_zero.loss,
        intercept_at_zero=b0,
    )
