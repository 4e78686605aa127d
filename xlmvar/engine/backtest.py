"""Backtesting a VaR series against realised P&L.

Conventions
-----------
* ``pnl`` is the realised profit and loss of each period, gains positive; ``var`` is the
  VaR forecast for the same period, a positive loss (one per period, or one for all).
* An **exception** is a period whose loss exceeds the VaR: ``-pnl > var``.  The inequality
  is strict: a loss exactly equal to VaR is not an exception.
* ``p = 1 - confidence`` is the exception probability the VaR claims, rounded to 15
  decimals so that 99% gives exactly 0.01 (:func:`xlmvar.engine.historical.tail_probability`);
  ``T`` the number of periods and ``x`` the number of exceptions.
* The likelihood-ratio statistics are never negative and never ``-0.0``: an exception rate
  equal to ``p`` gives exactly ``0.0``.
* Likelihoods use the convention ``0 ln 0 = 0``, so zero exceptions, all exceptions and
  states never visited give finite statistics, never NaN.

Tests
-----
Kupiec (1995) proportion of failures (unconditional coverage), chi-square with 1 dof::

    LR_pof = -2 ln[(1 - p)^(T - x) p^x] + 2 ln[(1 - x/T)^(T - x) (x/T)^x]

Christoffersen (1998) independence, chi-square with 1 dof, from the transition counts
``n_ij`` = number of periods in state ``j`` following a period in state ``i`` (1 =
exception), over the ``T - 1`` consecutive pairs::

    pi01 = n01 / (n00 + n01),  pi11 = n11 / (n10 + n11),  pi = (n01 + n11) / (T - 1)
    LR_ind = -2 ln[(1 - pi)^(n00 + n10) pi^(n01 + n11)]
             + 2 ln[(1 - pi01)^n00 pi01^n01 (1 - pi11)^n10 pi11^n11]

Conditional coverage ``LR_cc = LR_pof + LR_ind``, chi-square with 2 dof.

Basel Committee (1996) traffic light: green while ``P(X <= x) < 95%``, yellow while
``< 99.99%``, red beyond, ``X ~ Binomial(T, p)``.

References
----------
Kupiec, P. (1995). Techniques for verifying the accuracy of risk measurement models.
Journal of Derivatives 3(2).
Christoffersen, P. (1998). Evaluating interval forecasts. International Economic Review 39(4).
Basel Committee on Banking Supervision (1996). Supervisory framework for the use of
"backtesting" in conjunction with the internal models approach to market risk capital
requirements.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ._validation import as_real, as_vector, check_confidence, describe
from .historical import tail_probability

__all__ = [
    "VarBacktest",
    "var_backtest",
    "kupiec_pof",
    "christoffersen_independence",
    "transition_counts",
    "basel_zone",
    "basel_plus_factor",
    "BASEL_PLUS_FACTORS",
]

#: Basel (1996) Table 2: plus factor added to the multiplier of 3, by exceptions in 250
#: observations at 99%; green 0-4 -> 0, red 10 or more -> 1.
BASEL_PLUS_FACTORS = {5: 0.40, 6: 0.50, 7: 0.65, 8: 0.75, 9: 0.85}

_GREEN_BELOW = 0.95
_RED_FROM = 0.9999


@dataclass(frozen=True)
class VarBacktest:
    """Result of :func:`var_backtest`.

    Attributes
    ----------
    observations : int
        ``T``, the number of periods.
    exceptions : int
        ``x``, periods with ``-pnl > var``.
    expected_exceptions : float
        ``p T``.
    exception_rate : float
        ``x / T``.
    pof_lr, pof_pvalue : float
        Kupiec's likelihood ratio and its chi-square(1) p-value.
    ind_lr, ind_pvalue : float
        Christoffersen's independence likelihood ratio and its chi-square(1) p-value
        (``0`` and ``1`` when it cannot be computed; see :func:`christoffersen_independence`).
    cc_lr, cc_pvalue : float
        ``pof_lr + ind_lr`` and its chi-square(2) p-value.
    zone : str
        Basel traffic light for ``T`` observations at this confidence: "green", "yellow",
        "red".
    plus_factor : float
        Basel plus factor for that zone (see :func:`basel_plus_factor`).
    cumulative_probability : float
        ``P(X <= x)`` for ``X ~ Binomial(T, p)``, the number the zone is read from.
    n00, n01, n10, n11 : int
        Transition counts of the exception indicator (``n01`` = no exception, then one).
    flags : ndarray of bool, shape (T,)
        True where the period is an exception.
    """

    observations: int
    exceptions: int
    expected_exceptions: float
    exception_rate: float
    pof_lr: float
    pof_pvalue: float
    ind_lr: float
    ind_pvalue: float
    cc_lr: float
    cc_pvalue: float
    zone: str
    plus_factor: float
    cumulative_probability: float
    n00: int
    n01: int
    n10: int
    n11: int
    flags: np.ndarray


# ----------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------


# scipy.special is imported on first use: its import costs about a quarter of ``import udfs``
# and only the backtests need it.
def xlogy(x, y):
    """``x log(y)``, 0 where ``x == 0`` (:func:`scipy.special.xlogy`)."""
    from scipy.special import xlogy as f

    return f(x, y)


def bdtr(k, n, p):
    """Binomial CDF ``P(X <= k)``, ``X ~ B(n, p)`` (:func:`scipy.special.bdtr`)."""
    from scipy.special import bdtr as f

    return f(k, n, p)


def chdtrc(dof, x):
    """Chi-square survival function ``P(X > x)`` with ``dof`` degrees of freedom (:func:`scipy.special.chdtrc`)."""
    from scipy.special import chdtrc as f

    return f(dof, x)


def _count(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.ndarray)):
        raise ValueError(f"{name}: got {describe(value)}; expected a whole number >= {low}")
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"{name}: got {arr.size} values; expected a single whole number")
    item = arr.reshape(-1)[0]
    item = item.item() if isinstance(item, np.generic) else item
    if isinstance(item, bool) or not isinstance(item, numbers.Real):  # text, TRUE, a blank
        raise ValueError(f"{name}: got {describe(item)}; expected a whole number >= {low}")
    v = as_real(item)
    if not math.isfinite(v) or v != round(v) or v < low:
        raise ValueError(f"{name}: got {describe(item) if math.isinf(v) else format(v, 'g')}; expected a whole number >= {low}")
    return int(round(v))


def _confidence(confidence) -> float:
    if confidence is None:
        raise ValueError("confidence: is blank; expected the VaR's confidence such as 99% or 0.99")
    return check_confidence(confidence)


def _series(pnl, var):
    r = as_vector(pnl, "pnl")
    v = np.asarray(var, dtype=object) if not isinstance(var, np.ndarray) else var
    v = as_vector(v, "var")
    if v.size == 1:
        v = np.full(r.size, v[0])
    elif v.size != r.size:
        raise ValueError(
            f"var: has {v.size} values but pnl has {r.size}; expected one VaR per P&L value "
            "(same length) or a single VaR"
        )
    if np.all(v < 0.0):
        raise ValueError(
            "var: every value is negative; VaR is entered as a positive loss (e.g. 1.2m, not "
            "-1.2m)"
        )
    return r, v


# ----------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------


def kupiec_pof(exceptions, observations, confidence) -> float:
    """Kupiec's proportion-of-failures likelihood ratio (chi-square, 1 dof).

    ``LR = -2 [(T - x) ln(1 - p) + x ln p] + 2 [(T - x) ln(1 - x/T) + x ln(x/T)]`` with
    ``p = 1 - confidence`` and ``0 ln 0 = 0`` (so ``x = 0`` gives ``-2 T ln(1 - p)`` and
    ``x = T`` gives ``-2 T ln p``).
    """
    t = _count(observations, "observations", 1)
    x = _count(exceptions, "exceptions", 0)
    if x > t:
        raise ValueError(f"exceptions: got {x}, more than the {t} observations")
    p = tail_probability(_confidence(confidence))
    rate = x / t
    return _likelihood_ratio((t - x, 1.0 - p, 1.0 - rate), (x, p, rate))


def _likelihood_ratio(*terms) -> float:
    """``-2 sum n ln(p_restricted / p_fitted)`` over ``(n, p_restricted, p_fitted)`` terms.

    The same statistic as ``-2 (ln L_restricted - ln L_fitted)``, written term by term so
    that a fitted probability equal to the restricted one (an exception rate equal to
    ``p``, or ``pi01 = pi11 = pi``) contributes exactly ``ln 1 = 0``: the statistic is then
    exactly ``0.0``, not a rounding error of either sign.  Terms with ``n = 0`` are 0
    (``0 ln 0 = 0``; a fitted probability of 0 only occurs with ``n = 0``).  Never below 0
    and never ``-0.0``: the fitted likelihood is the larger in exact arithmetic.
    """
    total = 0.0
    for n, restricted, fitted in terms:
        if n > 0:
            total += n * math.log(restricted / fitted)
    return max(0.0, -2.0 * total)


def transition_counts(flags) -> tuple[int, int, int, int]:
    """``(n00, n01, n10, n11)``: consecutive pairs of the 0/1 exception indicator.

    ``n_ij`` counts periods ``t = 2..T`` in state ``j`` whose previous period was in state
    ``i``; they add up to ``T - 1``.
    """
    raw = np.asarray(flags)
    f = as_vector(raw.astype(float) if raw.dtype == bool else flags, "flags")
    if np.any((f != 0.0) & (f != 1.0)):
        raise ValueError("flags: expected 0/1 (or FALSE/TRUE) exception indicators")
    f = f.astype(int)
    prev, cur = f[:-1], f[1:]
    return (
        int(np.sum((prev == 0) & (cur == 0))),
        int(np.sum((prev == 0) & (cur == 1))),
        int(np.sum((prev == 1) & (cur == 0))),
        int(np.sum((prev == 1) & (cur == 1))),
    )


def christoffersen_independence(n00, n01, n10, n11) -> float:
    """Christoffersen's independence likelihood ratio (chi-square, 1 dof) from the counts.

    Compares a first-order Markov chain for the exception indicator (``pi01``, ``pi11``)
    with independence (one ``pi``); see the module docstring for the formula.

    Edge cases (no NaN): with ``0 ln 0 = 0`` the statistic is finite for all counts.  When
    one state is never left (``n00 + n01 = 0`` or ``n10 + n11 = 0``: no period without an
    exception before the last, or no exception before the last period) or there are no
    pairs at all (``T = 1``), the Markov and the independent likelihoods coincide and the
    statistic is exactly 0 (p-value 1): the test has no information there, which is not
    evidence of independence.
    """
    c = [_count(v, name, 0) for v, name in ((n00, "n00"), (n01, "n01"), (n10, "n10"), (n11, "n11"))]
    n00, n01, n10, n11 = c
    pairs = n00 + n01 + n10 + n11
    from0, from1 = n00 + n01, n10 + n11
    if pairs == 0 or from0 == 0 or from1 == 0:
        return 0.0
    pi = (n01 + n11) / pairs
    pi01, pi11 = n01 / from0, n11 / from1
    return _likelihood_ratio(
        (n00, 1.0 - pi, 1.0 - pi01), (n01, pi, pi01), (n10, 1.0 - pi, 1.0 - pi11), (n11, pi, pi11)
    )


def _cumulative(exceptions, observations, confidence) -> tuple[int, int, float, float]:
    t = _count(observations, "observations", 1)
    x = _count(exceptions, "exceptions", 0)
    if x > t:
        raise ValueError(f"exceptions: got {x}, more than the {t} observations")
    c = _confidence(0.99 if confidence is None else confidence)
    return x, t, c, float(bdtr(x, t, tail_probability(c)))


def basel_zone(exceptions, observations=250, confidence=0.99) -> str:
    """Basel (1996) traffic-light zone: "green", "yellow" or "red".

    With ``X ~ Binomial(T, 1 - confidence)``: green if ``P(X <= x) < 95%``, yellow if
    ``< 99.99%``, red otherwise, and green for no exception at all (see :func:`_zone`).  For
    250 observations at 99% this is the published table: green 0-4 exceptions, yellow 5-9,
    red 10 or more.

    Parameters
    ----------
    exceptions : int >= 0
    observations : int >= 1, default 250
    confidence : float in [0.5, 1), default 0.99
    """
    x, _, _, prob = _cumulative(exceptions, observations, confidence)
    return _zone(prob, x)


def _zone(prob: float, exceptions: int) -> str:
    """The zone of ``exceptions`` whose cumulative probability is ``prob``.  No exception is
    green whatever ``P(X <= 0)``: in a short sample at a high confidence (50 days of a 99.9%
    VaR) that probability reaches 95%, and the rule read literally would put a model that
    was never wrong in the yellow zone, or the red one."""
    if exceptions == 0 or prob < _GREEN_BELOW:
        return "green"
    if prob < _RED_FROM:
        return "yellow"
    return "red"


def basel_plus_factor(exceptions, observations=250, confidence=0.99) -> float:
    """Basel (1996) plus factor added to the capital multiplier of 3.

    For 250 observations at 99% it is the published Table 2: 0 in the green zone (0-4
    exceptions); 0.40, 0.50, 0.65, 0.75, 0.85 for 5, 6, 7, 8, 9; 1 in the red zone.

    For any other sample size or confidence (an xlmvar extension, not a Basel rule) the
    factor is read by tail probability: zone as in :func:`basel_zone`; in the yellow zone
    the factor of the largest 250-observation count ``k`` in 5..9 whose cumulative
    probability ``P(Binomial(250, 1%) <= k)`` does not exceed ``P(X <= x)`` (0.40 if none
    does).  This reproduces the table at 250 / 99%.
    """
    x, _, _, prob = _cumulative(exceptions, observations, confidence)
    return _plus_factor(prob, x)


def _plus_factor(prob: float, exceptions: int) -> float:
    zone = _zone(prob, exceptions)
    if zone == "green":
        return 0.0
    if zone == "red":
        return 1.0
    factor = BASEL_PLUS_FACTORS[5]
    for k, value in sorted(BASEL_PLUS_FACTORS.items()):
        if bdtr(k, 250, 0.01) <= prob + 1e-12:
            factor = value
    return factor


def var_backtest(pnl, var, confidence) -> VarBacktest:
    """Backtest a VaR series: exception count, Kupiec, Christoffersen, Basel zone.

    Parameters
    ----------
    pnl : array_like, shape (T,)
        Realised P&L per period, gains positive, in the units of ``var``.
    var : float or array_like, shape (T,)
        VaR forecast for each period (made before it), a positive loss; a single value is
        used for every period.
    confidence : float in [0.5, 1)
        Confidence of the VaR, e.g. 99% or 0.99 (required: it must match the forecasts).

    Returns
    -------
    VarBacktest
        See its attributes.  An exception is ``-pnl > var`` (strict).  The Basel zone and
        plus factor use this ``T`` and confidence (the published table is ``T = 250``, 99%).
    """
    r, v = _series(pnl, var)
    c = _confidence(confidence)
    p = tail_probability(c)
    flags = -r > v
    t, x = int(r.size), int(flags.sum())
    pof = kupiec_pof(x, t, c)
    n00, n01, n10, n11 = transition_counts(flags.astype(float))
    ind = christoffersen_independence(n00, n01, n10, n11)
    cc = pof + ind
    prob = float(bdtr(x, t, p))
    return VarBacktest(
        observations=t,
        exceptions=x,
        expected_exceptions=p * t,
        exception_rate=x / t,
        pof_lr=pof,
        pof_pvalue=float(chdtrc(1, pof)),
        ind_lr=ind,
        ind_pvalue=float(chdtrc(1, ind)),
        cc_lr=cc,
        cc_pvalue=float(chdtrc(2, cc)),
        zone=_zone(prob, x),
        plus_factor=_plus_factor(prob, x),
        cumulative_probability=prob,
        n00=n00,
        n01=n01,
        n10=n10,
        n11=n11,
        flags=flags,
    )
