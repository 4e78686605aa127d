"""Historical-simulation VaR and expected shortfall and their Euler decomposition.

The book is revalued on every period of a returns history, used as it is (its mean is part
of the P&L, nothing is demeaned).  With positions ``x`` (signed currency exposures), returns
``R`` (``T`` periods x ``n`` assets, row ``r_t``), tail probability ``a = 1 - confidence`` and
horizon ``h`` periods::

    P&L       p_t = r_t . x                              (one scenario per period)
    VaR       = -Q_a(p) sqrt(h)                          (Q_a: empirical quantile, see below)
    ES        = -mean{ p_t : p_t < Q_a(p) } sqrt(h)      (strictly below the quantile)

Both are positive losses in the units of ``positions``.  Multi-period figures use the
square-root-of-time rule: the one-period VaR/ES (mean included) and their decompositions are
multiplied by ``sqrt(h)``; overlapping multi-period returns are not formed.

Quantile rule
-------------
``quantile_method`` is any method of :func:`numpy.quantile`; the default ``"linear"`` is R's
type 7, the rule PerformanceAnalytics uses.  Every such rule is a fixed interpolation between
two adjacent order statistics, ``Q_a = (1 - g) p_(k) + g p_(k+1)``, where the position ``k``
and the weight ``g`` depend only on ``T``, ``a`` and the rule (type 7: ``k + g = (T - 1) a``,
counting from 0).  ``a`` is ``1 - confidence`` rounded to 15 decimals, so that 95% gives
exactly 0.05 (see :func:`tail_probability`).

Decomposition (marginal = dRisk/dx_i, component = x_i * marginal, components sum to the total)
------------------------------------------------------------------------------------------------
* ``smoothing="scenario"`` - the exact derivative.  Away from ties the order statistics are
  fixed scenarios ``s`` and ``s'``, so ``dQ_a/dx = (1 - g) r_s + g r_s'``, the same
  interpolation of the asset returns in those two scenarios; finite differences reproduce it.
  It rests on one or two days of history and so is noisy.  Where P&Ls tie at the quantile
  VaR has no derivative and one of the tied scenarios is used.
* ``smoothing="kernel"`` (default for VaR) - an estimate of ``dQ_a/dx = E[r | p = Q_a]``
  (Gourieroux, Laurent & Scaillet 2000) with a Gaussian kernel on the P&L centred at the
  quantile::

      w_t  = phi((p_t - Q_a) / b) / sum_s phi((p_s - Q_a) / b)
      b    = 0.9 min(sd(p), IQR(p) / 1.34) T^(-1/5)     (Silverman's rule on the P&L;
                                                          sd(p) alone when the IQR is 0)
      mu   = column means of R,   e = sum_t w_t r_t
      dQ   = mu + s (e - mu),     s = (Q_a - x.mu) / (x.(e - mu))

  The mean part is exact and the kernel part is rescaled by ``s`` so that the components sum
  exactly to the VaR (``x . dQ = Q_a``).  If the rescaling is undefined (the kernel average
  does not lie on the same side of the mean as the quantile, which needs a confidence near
  50%) the scenario derivative is used.
* ES (either setting): ``dES/dx = -mean{ r_t : p_t < Q_a }``, the exact derivative of the
  tail average; it sums to the ES.

Each rule is a set of scenario weights ``u`` (two, the tail's, or the kernel's) with
``marginal = -(u @ R) sqrt(h)`` and ``u . p`` the risk figure's P&L.  The cost is ``R x``
plus, for the kernel only, one more pass ``u @ R``; the exact rules gather a few rows.  Only
the P&L vector is ever partitioned (``np.argpartition``), never the returns table.

Special cases
-------------
* No P&L strictly below the quantile (ties at the bottom of the history): the tail is the
  scenarios at the quantile, so ES = VaR - PerformanceAnalytics' rule.
* A flat P&L (no positions, or a perfect hedge; range within 1e-12 of the gross exposure):
  VaR = ES = ``-x.mu sqrt(h)``, marginal ``-mu sqrt(h)`` (the zero subgradient of the
  dispersion part, as in :mod:`xlmvar.engine.parametric` with a mean); all-zero positions give zero
  totals and components, never NaN.
* VaR and ES need ``T >= 1 / (1 - confidence)`` rows (20 at 95%, 100 at 99%; see
  :func:`rows_needed`): with fewer, no observation lies as far in the tail as the quantile,
  the VaR is an interpolation of the worst one or two periods whatever the confidence, and
  the ES has no observation beyond the VaR.
"""

from __future__ import annotations

import math

import numpy as np

from ._decomposition import Decomposition
from ._threads import model_work, rows_product, sized_blas, weighted_rows
from ._validation import (
    as_vector,
    check_confidence,
    check_finite_result,
    check_horizon,
    check_options,
    check_return_levels,
    check_returns,
    finite_product,
)
from .parametric import check_measure

__all__ = [
    "QUANTILE_METHODS",
    "SMOOTHINGS",
    "check_quantile_method",
    "check_smoothing",
    "tail_probability",
    "rows_needed",
    "es_rows_needed",
    "quantile_bracket",
    "empirical_quantiles",
    "silverman_bandwidth",
    "scenario_weights",
    "kernel_weights",
    "tail_weights",
    "decompose",
    "decompose_scenarios",
    "standalone",
    "standalone_scenarios",
]

#: The rules :func:`numpy.quantile` accepts; ``"linear"`` is R's type 7.
QUANTILE_METHODS = (
    "linear",
    "inverted_cdf",
    "averaged_inverted_cdf",
    "closest_observation",
    "interpolated_inverted_cdf",
    "hazen",
    "weibull",
    "median_unbiased",
    "normal_unbiased",
    "lower",
    "higher",
    "midpoint",
    "nearest",
)

#: Decompositions of historical VaR: kernel-smoothed (default) or the exact scenario one.
SMOOTHINGS = ("kernel", "scenario")

#: A P&L whose range is below this fraction of the gross exposure is flat (rounding noise).
FLAT_TOLERANCE = 1e-12

_GROSS_SAMPLE_ROWS = 16


# --- argument checks -------------------------------------------------------------------------


def check_quantile_method(quantile_method) -> str:
    """Return a :func:`numpy.quantile` method name (``None`` means ``"linear"``, R type 7)."""
    if quantile_method is None:
        return "linear"
    name = str(quantile_method).strip().lower().replace("-", "_").replace(" ", "_")
    if name not in QUANTILE_METHODS:
        raise ValueError(
            f"quantile_method: got {quantile_method!r}; expected one of "
            f"{', '.join(QUANTILE_METHODS)} (linear is R's type 7)"
        )
    return name


def check_smoothing(smoothing) -> str:
    """Return ``"kernel"`` or ``"scenario"`` (``None`` means ``"kernel"``)."""
    if smoothing is None:
        return "kernel"
    name = str(smoothing).strip().lower()
    if name not in SMOOTHINGS:
        raise ValueError(f"smoothing: got {smoothing!r}; expected one of {', '.join(SMOOTHINGS)}")
    return name


def tail_probability(confidence) -> float:
    """``1 - confidence``, rounded to 15 decimals so that 95% gives exactly 0.05.

    In binary ``1 - 0.95`` is 0.050000000000000044, which moves the discontinuous quantile
    rules (``inverted_cdf``, ...) one order statistic when ``T * 0.05`` is a whole number; R's
    ``quantile`` guards against the same error with a fuzz of 4 machine epsilons.
    """
    return round(1.0 - check_confidence(confidence), 15)


def rows_needed(confidence) -> int:
    """Fewest periods for a historical VaR or ES: ``ceil(1 / (1 - confidence))``, at least 2.

    20 rows at 95%, 100 at 99%, 1000 at 99.9%.  The worst of ``T`` observations stands for
    the probability ``1 / T``; with fewer rows than ``1 / (1 - confidence)`` no observation
    lies as far in the tail as the ``1 - confidence`` quantile, so the "quantile" is an
    interpolation between the worst one or two periods - the same figure at 99% and at
    99.9% - and the ES has no observation beyond the VaR to average.
    """
    return max(2, math.ceil(1.0 / tail_probability(confidence) - 1e-9))


#: The ES rule is the VaR rule (kept under its former name).
es_rows_needed = rows_needed


def check_rows(returns: np.ndarray, needed: int, what: str) -> None:
    """Raise if the history is shorter than ``needed`` periods; ``what`` says who needs them."""
    if returns.shape[0] < needed:
        raise ValueError(
            f"returns: has {returns.shape[0]} rows; {what} needs at least {needed} rows "
            "(one per period)"
        )


def check_history(positions, returns, measure, confidence, horizon, method="historical"):
    """Validate the arguments every history-based method shares.

    Returns ``(x, r, pnl, measure, confidence, horizon)`` as float vector, float table, the
    book's P&L ``r @ x`` (not yet checked finite: it overflows for huge positions), ``"var"``
    or ``"es"``, float and int.  The P&L is the screen of the table for NaN and infinities
    (:func:`xlmvar.engine._validation.finite_product`), so a history is read once for both.
    A covariance matrix given where the returns history belongs (the model argument of the
    Excel functions takes either) is refused, naming ``method``; so are percentages and
    prices (:func:`xlmvar.engine._validation.check_return_levels`).
    """
    x = as_vector(positions, "positions")
    r = check_returns(returns, x.size, min_rows=1, finite=False)
    pnl = finite_product(r, x, "returns")
    _refuse_covariance(r, method)
    check_return_levels(r)
    return x, r, pnl, check_measure(measure), check_confidence(confidence), check_horizon(horizon)


def _refuse_covariance(r: np.ndarray, method: str) -> None:
    """Raise if the returns table is a symmetric n x n matrix with a positive diagonal.

    A history of ``n`` periods of ``n`` assets that is exactly symmetric does not occur in
    data; a covariance matrix typed into the model argument with a history-based method does.
    """
    n = r.shape[1]
    if n < 2 or r.shape[0] != n or not np.all(np.diag(r) > 0.0):
        return
    if np.max(np.abs(r - r.T)) <= 1e-12 * np.max(np.abs(r)):
        raise ValueError(
            f"returns: is a symmetric {n} x {n} table with a positive diagonal, which looks "
            f"like a covariance matrix; the {method} method needs a returns history (rows = "
            'periods, columns = assets); for a covariance use method "normal" or "montecarlo"'
        )


# --- flat (zero-risk) books ------------------------------------------------------------------


def noise_floor(x: np.ndarray, r: np.ndarray, pnl: np.ndarray | None = None, per_asset: bool = False):
    """The size of P&L rounding noise, from the gross exposure ``G_t = sum_i |x_i r_ti|``
    (or each ``|x_i r_ti|``).

    The largest of three bounds:

    * ``FLAT_TOLERANCE`` times the median of ``G_t`` over 16 evenly spaced periods: the
      scale of a level such as the mean P&L (a median, so that one bad tick of a hedged
      pair in a sampled period does not make every other position look like noise);
    * given the P&L ``pnl = r @ x``, the rounding error of the two periods that set its
      range, the highest and the lowest P&L, whichever periods the sample meets (a bond
      marked weekly in a daily history can have a sample of zero returns): a sum of ``n``
      products is within ``n eps G_t`` of its exact value in any order of summation, so
      ``8 n eps`` times the larger of their ``G_t``, however large the exposure of a hedged
      pair that cancels exactly there;
    * ``8 eps sum_i |x_i|``: a return computed from prices (``p1 / p0 - 1``, near 1) carries
      an absolute rounding error of about ``eps``, so two return columns of one price series
      computed two ways (in pounds and in pence) differ by that much, and a hedge of them
      by ``eps sum_i |x_i|`` - noise, not risk.

    A few rows, a small fraction of one pass.  Computed on the book and the rows divided by
    their largest values ``m`` and ``s``, and multiplied by ``m s`` after the tolerance, so
    that a book whose gross exposure is past the largest float (a hedge of ``1e308``
    against ``-1e308``, or a P&L table of such columns) still has a finite floor.
    """
    sample = np.abs(r[:: max(1, r.shape[0] // _GROSS_SAMPLE_ROWS)])
    extremes = np.abs(r[[int(np.argmax(pnl)), int(np.argmin(pnl))]]) if pnl is not None else sample[:0]
    s = max(float(sample.max()), float(extremes.max()) if extremes.size else 0.0)
    if s == 0.0:
        return np.zeros_like(x) if per_asset else 0.0
    if per_asset:
        return np.abs(x) * (FLAT_TOLERANCE * s) * (sample / s).mean(axis=0)
    m = float(np.abs(x).max())
    if m == 0.0:
        return 0.0
    unit = np.abs(x) / m
    bound = FLAT_TOLERANCE * _median((sample / s) @ unit)
    if extremes.size:
        bound = max(bound, _ROUNDING * x.size * float(((extremes / s) @ unit).max()))
    return max((bound * m) * s, (_ROUNDING * m) * float(unit.sum()))


def _median(values: np.ndarray) -> float:
    """``np.median`` of a few finite values, without its overhead (40 us for 17 values): the
    middle value, or the mean ``(a + b) / 2`` of the two middle values, as numpy computes it."""
    ordered = sorted(values.tolist())
    k = len(ordered) // 2
    return ordered[k] if len(ordered) % 2 else (ordered[k - 1] + ordered[k]) / 2.0


#: A bound on the relative rounding error of each product and addition, with a margin: a
#: sum of n products is within n eps of the sum of their absolute values; 8 covers the two
#: ends of a range and a factor 4 to spare.
_ROUNDING = 8.0 * float(np.finfo(float).eps)


def spread(values: np.ndarray, axis=None):
    """The range ``max - min`` of ``values`` (along ``axis``): ``inf``, without a warning,
    where it overflows (P&L of +-9e307), which :func:`is_flat` never calls noise."""
    with np.errstate(over="ignore"):
        return np.ptp(values, axis=axis)


def is_flat(spread, floor):
    """True where a P&L range ``spread`` is rounding noise: at most :func:`noise_floor`.

    Never where either is not finite: a range that overflowed (a book of ``1e308``) is not
    noise, and a floor that overflowed (returns near the largest float) cannot tell noise
    from risk; such books are computed, and figures that overflow are refused.
    """
    spread, floor = np.asarray(spread), np.asarray(floor)
    return np.isfinite(spread) & np.isfinite(floor) & (spread <= floor)


def flat_level(level: float, floor: float) -> float:
    """The P&L of a flat book, with a level that is rounding noise (:func:`noise_floor`) set
    to exactly 0.

    A perfect hedge (``x = (1, -1)`` on two equal columns) has a P&L of 0 in exact
    arithmetic but of a few ulps of the gross exposure in floating point; left as it is,
    that noise would be the VaR, and the components divided by it (% of VaR) would be
    arbitrary numbers instead of 0.
    """
    return 0.0 if abs(level) <= floor else level


# --- pure pieces -----------------------------------------------------------------------------


def quantile_bracket(size: int, tail: float, quantile_method: str = "linear") -> tuple[int, float]:
    """Order statistics behind an empirical quantile: ``Q = (1 - g) p_(k) + g p_(k+1)``.

    Parameters
    ----------
    size : int
        Number of observations ``T``.
    tail : float
        Probability of the quantile (``1 - confidence`` for VaR).
    quantile_method : str
        A :func:`numpy.quantile` method.

    Returns
    -------
    k, g : int, float
        0-based position of the lower order statistic and the weight on the next one
        (``g == 0`` when the quantile is a single order statistic).
    """
    virtual = float(np.quantile(np.arange(size, dtype=float), tail, method=quantile_method))
    if abs(virtual - round(virtual)) <= 1e-9 * max(1.0, virtual):
        virtual = float(round(virtual))
    k = min(int(math.floor(virtual)), size - 1)
    return k, virtual - k


def empirical_quantiles(values: np.ndarray, probs, quantile_method: str = "linear") -> np.ndarray:
    """``numpy.quantile(values, probs, method=quantile_method)`` of a finite 1-D sample.

    ``values`` is a finite float64 vector (the engine's P&L, checked finite) and ``probs``
    probabilities in [0, 1] (refused otherwise, as numpy does), read as float64 (numpy
    computes the index of a float32 probability in float32).

    For ``"linear"`` (R's type 7, the default) computed from one partition: with
    ``v = (T - 1) p``, ``k = floor(v)`` and ``g = v - k``, ``Q = p_(k) + g (p_(k+1) - p_(k))``
    (``p_(k+1) - (1 - g) (p_(k+1) - p_(k))`` when ``g >= 0.5``, numpy's own rounding), so
    the result equals numpy's to the last bit without its fixed cost (about 0.1 ms a call,
    as much as a pass over a 500 x 2,500 history's P&L many times over).  Any other method
    is numpy's.
    """
    probs = np.asarray(probs, dtype=float)
    if quantile_method != "linear" or values.size == 1:  # numpy keeps -0.0 of a single value
        if not np.all((probs >= 0.0) & (probs <= 1.0)):
            raise ValueError("quantiles must be in the range [0, 1]")
        return np.asarray(np.quantile(values, probs, method=quantile_method))
    # numpy's arithmetic, in Python floats (the same IEEE doubles) for the few probabilities
    # a call has: its virtual index, its order statistics (both -1 at the top) and its weight
    last = values.size - 1
    brackets = []
    for p in probs.ravel().tolist():
        if not 0.0 <= p <= 1.0:  # NaN too
            raise ValueError("quantiles must be in the range [0, 1]")
        virtual = last * p
        low = -1 if virtual >= last else math.floor(virtual)
        brackets.append((low, -1 if low == -1 else low + 1, virtual - low))
    # numpy's own partition points (the ends included): equal values (0.0 and -0.0) then
    # land where numpy's land
    ordered = np.partition(values, sorted({0, -1, *(i for low, high, _ in brackets for i in (low, high))}))
    out = []
    for low, high, g in brackets:
        a, b = float(ordered[low]), float(ordered[high])
        step = b - a
        out.append(b - step * (1.0 - g) if g >= 0.5 else a + step * g)
    return np.array(out).reshape(probs.shape)


def silverman_bandwidth(pnl: np.ndarray) -> float:
    """Silverman's rule of thumb on a P&L sample: ``0.9 min(sd, IQR / 1.34) T^(-1/5)``.

    ``sd`` has divisor ``T - 1``; when the interquartile range is 0 the ``sd`` alone is used.
    """
    deviation = pnl - np.add.reduce(pnl) / pnl.size  # np.std's own steps, without its overhead
    sd = math.sqrt(np.add.reduce(deviation * deviation) / (pnl.size - 1))
    q25, q75 = empirical_quantiles(pnl, (0.25, 0.75))
    spread = min(sd, float(q75 - q25) / 1.34) if q75 > q25 else sd
    return 0.9 * spread * pnl.size ** -0.2


# Every historical decomposition is a weighted average of scenarios: the gradient of the
# risk figure's P&L is ``weights @ returns[rows]``, and the total is ``weights @ pnl[rows]``.
# Each rule below returns ``(rows, weights)``: a few rows for the exact rules (gathered, not a
# pass over the history), every row for the kernel and the flat book (one pass).


def scenario_weights(pnl: np.ndarray, tail: float, quantile_method: str = "linear"):
    """``(rows, weights)`` of the exact rule: ``1 - g`` on ``p_(k)`` and ``g`` on ``p_(k+1)``."""
    k, g = quantile_bracket(pnl.size, tail, quantile_method)
    if g == 0.0:
        return np.argpartition(pnl, k)[k : k + 1], np.ones(1)
    return np.argpartition(pnl, (k, k + 1))[k : k + 2], np.array([1.0 - g, g])


def kernel_weights(pnl: np.ndarray, q: float):
    """``(rows, weights)`` of the kernel rule (every row), or ``None`` if the rescaling fails.

    ``w_t`` is the Gaussian kernel at ``(p_t - q) / b`` (Silverman's ``b``), normalised; the
    returned weights ``s w_t + (1 - s) / T`` with ``s = (q - mean(p)) / (w.p - mean(p))``
    keep the mean part exact and make the weighted P&L equal ``q``.
    """
    c = float(np.abs(pnl).max())  # the weights are scale-free: on the P&L scaled to 1, the
    pnl, q = pnl / c, q / c  # bandwidth neither overflows (1e154) nor underflows (1e-160)
    u = (pnl - q) / silverman_bandwidth(pnl)
    u2 = u * u
    w = np.exp(-0.5 * (u2 - u2.min()))  # the nearest scenario weighs 1: no underflow
    w /= w.sum()
    mean = pnl.mean()
    target, achieved = q - mean, w @ pnl - mean
    if not target * achieved > 0.0:
        return None
    s = target / achieved
    return slice(None), s * w + (1.0 - s) / pnl.size


def tail_weights(pnl: np.ndarray, q: float):
    """``(rows, weights)``: equal weights strictly below ``q`` (at or below it if none are)."""
    rows = np.flatnonzero(_tail_mask(pnl, q))
    return rows, np.full(rows.size, 1.0 / rows.size)


def _tail_mask(pnl: np.ndarray, q):
    """Scenarios strictly below the quantile (per column); at or below where none are."""
    below = pnl < q
    return np.where(below.any(axis=0), below, pnl <= q)


# --- public interface ------------------------------------------------------------------------


@sized_blas(model_work)
def decompose(
    positions,
    returns,
    measure="var",
    confidence=0.95,
    horizon=1,
    *,
    smoothing="kernel",
    quantile_method="linear",
    **options,
) -> Decomposition:
    """Historical VaR or ES of a book and its Euler decomposition.

    ``VaR = -Q_a(R x) sqrt(h)``; ``ES = -mean{p_t < Q_a} sqrt(h)`` with ``a = 1 - confidence``
    (see the module notes for the decompositions).

    Parameters
    ----------
    positions : array_like, shape (n,)
        Signed exposures in currency (negative = short).
    returns : array_like, shape (T, n)
        Per-period returns, rows = periods, columns = assets; used as is (mean included).
    measure : {"var", "es"}
    confidence : float in [0.5, 1), default 0.95
    horizon : int >= 1, default 1
        Periods; the one-period figures are scaled by ``sqrt(horizon)``.
    smoothing : {"kernel", "scenario"}, default "kernel"
        VaR decomposition: Gaussian-kernel estimate of ``E[r | p = VaR quantile]`` rescaled to
        sum to the VaR, or the exact derivative (the quantile's one or two scenarios).
        ES is always decomposed exactly over its tail scenarios.
    quantile_method : str, default "linear"
        Any :func:`numpy.quantile` method; ``"linear"`` is R's type 7 (PerformanceAnalytics).

    Returns
    -------
    Decomposition
        ``total`` (a positive loss), ``marginal`` (dTotal/dx) and ``component``
        (``x * marginal``, summing to ``total``).

    Raises
    ------
    ValueError
        Naming the argument: bad positions/returns, confidence, horizon, measure, smoothing,
        quantile_method, an unknown option, or fewer rows than the measure needs.
    """
    x, r, pnl, measure, confidence, h = check_history(positions, returns, measure, confidence, horizon)
    return decompose_scenarios(
        x, r, measure, confidence, h, smoothing=smoothing, quantile_method=quantile_method, pnl=pnl, **options
    )


def decompose_scenarios(
    x, r, measure, confidence, horizon, *, smoothing="kernel", quantile_method="linear", pnl=None, **options
) -> Decomposition:
    """:func:`decompose` on an already validated book and scenario table.

    For scenario tables built by the engine (Monte Carlo draws), whose values are not
    subject to the checks on a returns history (:func:`check_history`): a normal draw can
    fall below -100%.  ``x`` and ``r`` are float arrays, ``measure``, ``confidence`` and
    ``horizon`` validated values; ``pnl``, if given, is ``r @ x`` (computed otherwise).
    """
    h = horizon
    smoothing = check_smoothing(smoothing)
    method = check_quantile_method(quantile_method)
    check_options(options, "historical", ("smoothing", "quantile_method"))
    tail, scale = tail_probability(confidence), math.sqrt(h)
    _check_history_rows(r, measure, confidence)

    if pnl is None:
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below, not warned
            pnl = rows_product(r, x)
    # finite returns and positions can still overflow in their product (1e200 x 1e109):
    # a P&L of inf or NaN is refused here, before any quantile or flat-book test reads it
    check_finite_result("positions", "the P&L of these positions in some period", pnl)
    floor = noise_floor(x, r, pnl)
    if is_flat(spread(pnl), floor):
        rows, weights = slice(None), np.full(pnl.size, 1.0 / pnl.size)  # -x.mu, -mu
        q = flat_level(float(weights @ pnl), floor)
    else:
        q = float(empirical_quantiles(pnl, tail, method))
        if measure == "es":
            rows, weights = tail_weights(pnl, q)
            q = float(weights @ pnl[rows])
        else:
            smooth = kernel_weights(pnl, q) if smoothing == "kernel" else None
            rows, weights = smooth or scenario_weights(pnl, tail, method)
    marginal = -weighted_rows(weights, r[rows]) * scale + 0.0  # no -0.0 in a cell
    return Decomposition(-q * scale + 0.0, marginal, x * marginal + 0.0)


@sized_blas(model_work)
def standalone(
    positions,
    returns,
    measure="var",
    confidence=0.95,
    horizon=1,
    *,
    smoothing="kernel",
    quantile_method="linear",
    **options,
) -> np.ndarray:
    """Each position's historical VaR or ES held alone: the measure of ``x_i r_ti``.

    ``-Q_a(x_i r_i) sqrt(h)`` for VaR, ``-mean{x_i r_ti < Q_a} sqrt(h)`` for ES (a position of
    0 has 0).  ``smoothing`` is accepted for symmetry with :func:`decompose` and unused.
    """
    x, r, _, measure, confidence, h = check_history(positions, returns, measure, confidence, horizon)
    return standalone_scenarios(
        x, r, measure, confidence, h, smoothing=smoothing, quantile_method=quantile_method, **options
    )


def standalone_scenarios(
    x, r, measure, confidence, horizon, *, smoothing="kernel", quantile_method="linear", **options
) -> np.ndarray:
    """:func:`standalone` on an already validated book and scenario table (see
    :func:`decompose_scenarios`)."""
    h = horizon
    check_smoothing(smoothing)
    method = check_quantile_method(quantile_method)
    check_options(options, "historical", ("smoothing", "quantile_method"))
    _check_history_rows(r, measure, confidence)

    pnl = r * x
    q = np.quantile(pnl, tail_probability(confidence), axis=0, method=method)
    if measure == "es":
        q = _tail_means(pnl, _tail_mask(pnl, q))
    return -q * math.sqrt(h) + 0.0


def _tail_means(pnl: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each column's mean P&L over the scenarios of ``mask``.

    A column whose tail sum passes the largest float (P&L of -9e307 in every tail period)
    has a finite mean: it is summed again on the column divided by its largest ``|P&L|``.
    """
    count = np.sum(mask, axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        means = np.sum(pnl * mask, axis=0) / count
    over = ~np.isfinite(means) & np.isfinite(pnl).all(axis=0)
    if over.any():
        size = np.max(np.abs(pnl[:, over]), axis=0)
        means[over] = size * (np.sum(pnl[:, over] / size * mask[:, over], axis=0) / count[over])
    return means


def _check_history_rows(r, measure, confidence) -> None:
    what = "ES" if measure == "es" else "VaR"
    check_rows(
        r,
        rows_needed(confidence),
        f"a {confidence * 100:g}% historical {what} (1 / (1 - confidence) periods, so that the "
        "worst one lies at least as far in the tail as the quantile)",
    )
