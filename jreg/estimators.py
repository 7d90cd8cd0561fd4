r"""scikit-learn estimators over :mod:`jreg.glm`: :class:`GLMRegressor`, :class:`GLMClassifier`,
:class:`GLMRegressorCV`, :class:`GLMClassifierCV` (the extra ``jreg[sklearn]``; ``import jreg``
does not import scikit-learn).

Their parameters are :func:`jreg.glm.path`'s keywords, with its objective

.. math::
   \min_{W, b} \; \sum_i a_i f(x_i^\top W + b, y_i) + P(W; \text{strength})

(:math:`a_i` the sample weights normalized to sum to one), so ``GLMRegressor(strength=a)`` is
``Lasso(alpha=a)``, ``penalty="elastic_net"`` is ``ElasticNet(alpha=a, l1_ratio=r)``, and
``GLMClassifier(strength=1 / (n * C))`` is ``LogisticRegression(C=C, l1_ratio=1)``.

The strength is an argument of the compiled program, never a constant of it: a grid search over
``strength`` compiles once per data shape. Shapes share programs too: the data are padded to a
few bucket sizes (rows of weight 0; features that are all 0, penalized, which every solution
leaves at exactly 0), so scikit-learn's many small problems and the folds of a grid search
reuse a handful of programs. The CV estimators fit every fold and the full-data path in one
program (:func:`jreg.glm.cross_validate`).
"""

import numpy as np
from scipy import special
from scipy.sparse import csc_matrix, issparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import KFold, StratifiedKFold, check_cv
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from jreg import glm
from jreg._checks import is_count
from jreg.glm import paths

__all__ = ["GLMClassifier", "GLMClassifierCV", "GLMRegressor", "GLMRegressorCV"]

_RULES = ("best", "1se")
_SPARSE = ("csr", "csc", "coo")  # scipy.sparse formats taken as they are


def bucket(size: int) -> int:
    """The padded length of an axis of ``size``: the next power of two from 8 to 64 (tiny
    problems, where compiling costs more than solving), then the next of eight sizes per
    doubling (72, 80, ..., 128, 144, ...: at most 12.5 % padding)."""
    if size <= 64:
        return max(8, 1 << (size - 1).bit_length())
    step = 1 << ((size - 1).bit_length() - 4)
    return -(-size // step) * step


def _pad(value, n_features: int, n_padded: int, fill, name: str):
    """A per-feature array ``(p,)`` padded with ``fill`` (a scalar, or one value per padded
    feature); None and scalars as given."""
    if value is None or np.ndim(value) == 0:
        return value
    array = np.asarray(value)
    if array.shape != (n_features,):
        raise ValueError(f"{name} must have shape ({n_features},), got {array.shape}")
    return np.concatenate([array, np.broadcast_to(fill, (n_padded - n_features,))])


class _GLM(BaseEstimator):
    """What the four estimators share: validation, padding, fitted attributes, predictions."""

    _classifier = False

    def _glm_keywords(self, n_features: int, n_padded: int) -> dict:
        """:func:`jreg.glm.path`'s keywords from the parameters, per-feature arrays padded
        (padded features: penalized, bounds 0, one group each)."""
        groups = self.groups
        if groups is not None:  # each padded feature a group of its own
            new_ids = np.max(groups, initial=-1) + 1 + np.arange(n_padded - n_features)
            groups = _pad(groups, n_features, n_padded, new_ids, "groups")
        n_new_groups = n_padded - n_features if self.penalty == "group_lasso" else 0
        group_weights = self.group_weights
        if group_weights is not None:
            group_weights = np.concatenate([np.ravel(group_weights), np.ones(n_new_groups)])
        bounds = self.bounds
        if bounds is not None:
            bounds = tuple(_pad(bound, n_features, n_padded, 0.0, "bounds") for bound in bounds)
        return dict(
            penalty=self.penalty, l1_ratio=self.l1_ratio, fit_intercept=self.fit_intercept,
            tol=self.tol, max_iter=self.max_iter, bounds=bounds,
            penalty_factor=_pad(self.penalty_factor, n_features, n_padded, 1.0,
                                "penalty_factor"),
            groups=groups, group_weights=group_weights, gamma=self.gamma, a=self.a,
            delta=self.delta,
        )  # fmt: skip

    def fit(self, X, y, sample_weight=None):
        """Fits the model.

        Args:
          X: ``(n, p)`` features (array-like; a DataFrame's column names are kept).
          y: ``(n,)`` targets (``(n, m)`` for several outputs of ``"squared"``) or labels.
          sample_weight: ``(n,)`` non-negative weights, or None.

        Returns:
          The estimator.
        """
        for name, value in (("X", X), ("y", y)):  # scikit-learn's error names neither
            if (value.dtype if issparse(value) else np.asarray(value).dtype).kind == "c":
                raise ValueError(f"{name} must hold real numbers: Complex data not supported")
        X, y = validate_data(
            self, X, y, dtype=np.float64, y_numeric=not self._classifier,
            multi_output=not self._classifier, accept_sparse=_SPARSE,
        )  # fmt: skip
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        datafit = self.datafit or "squared"
        if self._classifier:
            check_classification_targets(y)
            self.classes_, y = np.unique(y, return_inverse=True)
            if self.classes_.size < 2:
                raise ValueError(f"y must hold at least 2 classes, got one class: {self.classes_}")
            datafit = self.datafit or ("logistic" if self.classes_.size == 2 else "multinomial")
        n, p = X.shape
        rows, n_padded = bucket(n) - n, bucket(p)
        if issparse(X):  # never densified (see jreg.glm.sparse)
            X = csc_matrix(X)
            X.resize((n + rows, n_padded))
        else:
            X = np.pad(X, ((0, rows), (0, n_padded - p)))
        y = np.pad(y, [(0, rows)] + [(0, 0)] * (y.ndim - 1))
        sample_weight = np.pad(sample_weight, (0, rows))
        keywords = self._glm_keywords(p, n_padded)
        coef, intercept, n_iter = self._solve(X, y, sample_weight, datafit, keywords, (n, p))
        coef, intercept = np.asarray(coef, np.float64)[:p], np.asarray(intercept, np.float64)
        if self._classifier and coef.ndim == 1:  # scikit-learn's binary layout
            coef, intercept = coef[:, None], intercept[None]
        self.coef_, self.intercept_, self.n_iter_ = coef.T, intercept, int(n_iter)
        return self

    def _linear_predictor(self, X):
        """The linear predictor :math:`X W + b`: ``(n,)``, or ``(n, m)`` for several outputs
        or more than two classes."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False, accept_sparse=_SPARSE)
        z = X @ self.coef_.T + self.intercept_
        return z[:, 0] if z.ndim == 2 and z.shape[1] == 1 else z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        squared = self.datafit in (None, "squared")
        tags.target_tags.multi_output = squared and not self._classifier
        tags.target_tags.single_output = True
        tags.target_tags.positive_only = self.datafit == "poisson"
        tags.input_tags.sparse = True  # jreg.glm.sparse: never densified
        return tags


class _Single(_GLM):
    """The solution at one strength (:func:`jreg.glm.fit`)."""

    def __init__(
        self, *, datafit=None, penalty="l1", strength=None, l1_ratio=1.0, fit_intercept=True,
        tol=1e-6, max_iter=10_000, bounds=None, penalty_factor=None, groups=None,
        group_weights=None, gamma=3.0, a=3.7, delta=1.35,
    ):  # fmt: skip
        self.datafit, self.penalty, self.strength = datafit, penalty, strength
        self.l1_ratio, self.fit_intercept, self.tol, self.max_iter = (
            l1_ratio, fit_intercept, tol, max_iter)  # fmt: skip
        self.bounds, self.penalty_factor, self.groups, self.group_weights = (
            bounds, penalty_factor, groups, group_weights)  # fmt: skip
        self.gamma, self.a, self.delta = gamma, a, delta

    def _solve(self, X, y, sample_weight, datafit, keywords, shape):
        strength = self.strength
        if strength is None:  # one sample's weight: Ridge's alpha = 1, LogisticRegression's C = 1
            strength = 1 / np.sum(sample_weight)
        result = glm.fit(X, y, strength, datafit=datafit, sample_weight=sample_weight,
                         **keywords)  # fmt: skip
        self.strength_ = float(strength)
        return result.coef, result.intercept, result.n_iter


class _CV(_GLM):
    """The solution at the strength cross-validation picks (:func:`jreg.glm.cross_validate`)."""

    def __init__(
        self, *, datafit=None, penalty="l1", strengths=None, n_strengths=100,
        strength_min_ratio=None, n_folds=5, cv=None, scoring="deviance", rule="best", seed=0,
        l1_ratio=1.0, fit_intercept=True, tol=1e-6, max_iter=10_000, bounds=None,
        penalty_factor=None, groups=None, group_weights=None, gamma=3.0, a=3.7, delta=1.35,
    ):  # fmt: skip
        self.datafit, self.penalty, self.strengths, self.n_strengths = (
            datafit, penalty, strengths, n_strengths)  # fmt: skip
        self.strength_min_ratio, self.n_folds, self.cv, self.scoring, self.rule, self.seed = (
            strength_min_ratio, n_folds, cv, scoring, rule, seed)  # fmt: skip
        self.l1_ratio, self.fit_intercept, self.tol, self.max_iter = (
            l1_ratio, fit_intercept, tol, max_iter)  # fmt: skip
        self.bounds, self.penalty_factor, self.groups, self.group_weights = (
            bounds, penalty_factor, groups, group_weights)  # fmt: skip
        self.gamma, self.a, self.delta = gamma, a, delta

    def _folds(self, X, y) -> np.ndarray:
        """Fold ids ``(n,)`` of ``cv``'s test sets (a partition of the rows), or drawn."""
        if self.cv is None:
            if not is_count(self.n_folds, 2) or self.n_folds > X.shape[0]:
                raise ValueError(
                    f"n_folds must be an int in [2, n_samples = {X.shape[0]}], got {self.n_folds!r}"
                )
            kind = StratifiedKFold if self._classifier else KFold
            splitter = kind(self.n_folds, shuffle=True, random_state=self.seed)
        else:
            splitter = check_cv(self.cv, y, classifier=self._classifier)
        folds, counts = np.zeros(X.shape[0], int), np.zeros(X.shape[0], int)
        for k, (_, test) in enumerate(splitter.split(X, y)):
            folds[test], counts[test] = k, counts[test] + 1
        if np.any(counts != 1):
            raise ValueError(
                "cv's test sets must partition the rows, each row in one (KFold, "
                "StratifiedKFold, GroupKFold, LeaveOneGroupOut, ...)"
            )
        return folds

    def _solve(self, X, y, sample_weight, datafit, keywords, shape):
        if self.rule not in _RULES:
            raise ValueError(f"rule must be one of {_RULES}, got {self.rule!r}")
        (n, p), ratio = shape, self.strength_min_ratio
        if ratio is None:  # glm's default, of the data before padding
            ratio = paths.default_strength_min_ratio(n, p)
        folds = np.pad(self._folds(X[:n, :p], y[:n]), (0, X.shape[0] - n))
        cv = glm.cross_validate(
            X, y, folds=folds, scoring=self.scoring, datafit=datafit,
            strengths=self.strengths, n_strengths=self.n_strengths, strength_min_ratio=ratio,
            sample_weight=sample_weight, **keywords,
        )  # fmt: skip
        chosen = cv.best_strength if self.rule == "best" else cv.strength_1se
        index = int(np.argmin(np.abs(np.asarray(cv.strengths) - np.asarray(chosen))))
        self.strength_ = float(cv.strengths[index])
        self.strengths_, self.scores_ = np.asarray(cv.strengths), np.asarray(cv.scores)
        return cv.path.coef[index], cv.path.intercept[index], cv.path.n_iter[index]


class _Regressor(RegressorMixin):
    _classifier = False

    def predict(self, X):
        """The mean response (for ``"poisson"``, :math:`e^{X W + b}`)."""
        z = self._linear_predictor(X)
        return np.exp(z) if self.datafit == "poisson" else z


class _Classifier(ClassifierMixin):
    _classifier = True

    def decision_function(self, X):
        """The linear predictor :math:`X W + b`: ``(n,)`` for two classes (positive: the
        second), else ``(n, n_classes)``."""
        return self._linear_predictor(X)

    def predict_proba(self, X):
        """Class probabilities ``(n, n_classes)``, in the order of ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X):
        """The logarithm of :meth:`predict_proba`."""
        z = self.decision_function(X)
        if z.ndim == 1:
            z = np.stack([np.zeros_like(z), z], axis=1)
        return special.log_softmax(z, axis=1)

    def predict(self, X):
        """The most probable class of each row."""
        z = self.decision_function(X)
        return self.classes_[(z > 0).astype(int) if z.ndim == 1 else np.argmax(z, axis=1)]


class GLMRegressor(_Regressor, _Single):
    """A penalized linear regression (``datafit``: ``"squared"`` by default, ``"poisson"``,
    ``"huber"`` or a user's loss) at one ``strength`` (default :math:`1/n`, one sample's
    weight, as scikit-learn's ``Ridge(alpha=1)``); the other parameters are
    :func:`jreg.glm.path`'s.

    Examples:
      >>> import numpy as np
      >>> from jreg.estimators import GLMRegressor
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((50, 5))
      >>> y = X @ np.array([2.0, 0, 0, -1.0, 0]) + 0.1 * rng.standard_normal(50)
      >>> print(GLMRegressor(strength=0.1).fit(X, y).coef_.round(2))
      [ 1.84  0.    0.   -0.93  0.  ]
    """


class GLMClassifier(_Classifier, _Single):
    """A penalized linear classifier (``"logistic"`` for two classes, ``"multinomial"`` for
    more, unless ``datafit`` says) at one ``strength`` (default :math:`1/n`, scikit-learn's
    ``LogisticRegression`` with ``C = 1``); the other parameters are :func:`jreg.glm.path`'s.
    """


class GLMRegressorCV(_Regressor, _CV):
    """:class:`GLMRegressor` at the strength ``n_folds``-fold cross-validation picks on a
    path of ``n_strengths`` (or the given ``strengths``): the lowest mean ``scoring``
    (``rule="best"``) or the largest strength within one standard error of it (``"1se"``).
    Fitted: ``strength_``, ``strengths_ (k,)``, ``scores_ (n_folds, k)``."""


class GLMClassifierCV(_Classifier, _CV):
    """:class:`GLMClassifier` at the strength cross-validation picks (as
    :class:`GLMRegressorCV`; ``scoring`` may also be ``"misclassification"`` or ``"auc"``)."""
