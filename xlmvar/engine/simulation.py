"""Monte Carlo VaR and expected shortfall and their Euler decomposition.

Scenarios are drawn from a model of the asset returns over the horizon (``h`` periods,
per-period covariance ``S``, optional per-period mean ``mu``):

* normal:      ``R = mu h + sqrt(h) L Z``,                        ``Z ~ N(0, I)``
* Student-t:   ``R = mu h + sqrt(h) sqrt((dof - 2) / W) L Z``,    ``W ~ chi^2(dof)``

with ``L L' = S``.  The Student-t draw is the multivariate t with ``dof`` degrees of freedom
and scale matrix ``S h (dof - 2) / dof``, so its covariance is ``S h``, the same as the
normal model's: only the shape of the tails differs.  Every portfolio's P&L is then a
(scaled) univariate t, so the t VaR is ``t_dof^-1(c) sqrt((dof - 2) / dof)`` sigma rather than
``z_c`` sigma: larger far in the tail (99%) but *smaller* at 95% for the same covariance
(e.g. dof = 4: 2.65 vs 2.33 sigma at 99%, 1.51 vs 1.64 sigma at 95%).

The simulated returns are a scenario table like a history, and the book is decomposed by
the same rules as historical simulation (:func:`xlmvar.engine.historical.decompose` with
``horizon=1``, the horizon being in the draws already): VaR is minus the
``1 - confidence`` quantile of the P&L (numpy ``"linear"``, R type 7) and ES the mean of the
losses strictly beyond VaR.

Reproducibility: a fixed default seed (:data:`DEFAULT_SEED`), so a sheet recalculates to
the same figures; and common random numbers, i.e. the draws depend on the covariance, mean,
horizon, dof, seed and number of draws but **not** on the positions, so VaR is a smooth
function of the positions and incremental VaR does not jump with sampling noise.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import historical
from ._cache import memoize
from ._decomposition import Decomposition
from ._threads import simulation_work, sized_blas
from ._validation import (
    as_vector,
    check_confidence,
    check_covariance,
    check_finite_result,
    check_horizon,
    check_mean,
    check_options,
    covariance_factor,
)
from ._validation import as_real
from ._validation import describe as _describe
from .parametric import _is_zero_risk, check_measure, normal_pdf

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_DRAWS",
    "cov_factor",
    "simulate_returns",
    "decompose",
    "standalone",
    "check_draws",
    "check_seed",
    "check_dof",
    "check_table_size",
    "pnl_standard_error",
    "standard_error",
    "var_standard_error",
    "min_draws",
    "clear_cache",
]

#: Seed used when none is given, so a workbook recalculates to the same numbers.
DEFAULT_SEED = 20_240_531

#: Number of scenarios drawn when none is given.
DEFAULT_DRAWS = 100_000

#: The tail beyond VaR must hold at least this many scenarios on average.
MIN_TAIL_DRAWS = 10

#: Smallest number of draws accepted whatever the confidence.
MIN_DRAWS = 100

#: Largest scenario table simulated, in bytes (``draws x assets x 8``): 512 MiB.  Working
#: on the table (P&L, quantiles, the stand-alone P&L of each position) needs about 3 times
#: its size at the peak, so one cell stays below about 1.6 GB.
MAX_SCENARIO_BYTES = 512 * 2**20

#: Budget of the scenario cache: the largest table and 64 MiB for the cache's copy of the
#: model it was simulated from (its covariance and mean) and the key, so that every table
#: accepted whose model has at most 2,890 assets is kept for the next formula.
SCENARIO_CACHE_BYTES = MAX_SCENARIO_BYTES + 64 * 2**20

#: The same cap in numbers (draws x assets): 67,108,864, e.g. 100,000 draws of 671 assets.
MAX_CELLS = MAX_SCENARIO_BYTES // 8

#: Fewest Student-t degrees of freedom accepted (see :func:`check_dof`).
MIN_DOF = 3.0

_CHUNK_CELLS = 1 << 22  # rows are transformed in blocks of about 32 MB


# --------------------------------------------------------------------------- argument checks


def min_draws(confidence=0.95) -> int:
    """Fewest draws accepted at ``confidence``: ``max(100, ceil(10 / (1 - confidence)))``.

    That leaves, on average, at least 10 scenarios beyond the VaR quantile.
    """
    c = check_confidence(confidence)
    return max(MIN_DRAWS, math.ceil(round(MIN_TAIL_DRAWS / (1.0 - c), 6)))


def check_draws(draws, confidence=None) -> int:
    """Return ``draws`` as a whole number of scenarios, enough for ``confidence`` if given."""
    if draws is None:
        return DEFAULT_DRAWS
    if isinstance(draws, bool) or not isinstance(draws, numbers.Real):
        raise ValueError(
            f"draws: got {_describe(draws)}; expected a whole number of scenarios such as 100000"
        )
    d = as_real(draws)
    if not math.isfinite(d) or d != round(d) or d < 2:
        raise ValueError(f"draws: got {_describe(draws if math.isinf(d) else d)}; expected a whole number of scenarios such as 100000")
    d = int(round(d))
    if confidence is not None:
        need = min_draws(confidence)
        if d < need:
            raise ValueError(
                f"draws: got {d}; at {check_confidence(confidence):g} confidence at least {need} "
                f"draws are needed so that about {MIN_TAIL_DRAWS} scenarios lie beyond the VaR"
            )
    return d


def check_seed(seed) -> int:
    """Return ``seed`` as a non-negative whole number (blank means :data:`DEFAULT_SEED`)."""
    if seed is None:
        return DEFAULT_SEED
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Real):
        raise ValueError(
            f"seed: got {_describe(seed)}; expected a whole number >= 0 such as {DEFAULT_SEED}"
        )
    if isinstance(seed, numbers.Integral):
        s = int(seed)
    else:
        f = as_real(seed)
        if not math.isfinite(f) or f != round(f):
            raise ValueError(f"seed: got {_describe(seed if math.isinf(f) else f)}; expected a whole number >= 0 such as {DEFAULT_SEED}")
        s = int(round(f))
    if s < 0:
        raise ValueError(f"seed: got {s}; expected a whole number >= 0 such as {DEFAULT_SEED}")
    return s


def check_dof(dof) -> float | None:
    """Return the Student-t degrees of freedom (at least :data:`MIN_DOF` = 3), or ``None``.

    The t draws keep the covariance fixed (scale ``sqrt((dof - 2) / dof)``), so every
    portfolio's VaR is ``t_dof^-1(c) sqrt((dof - 2) / dof)`` sigma: at 95% 1.56 sigma at dof
    5, 1.36 at 3, 1.14 at 2.5, 0.62 at 2.1 and 0 in the limit 2 (normal: 1.64).  Below 3 the
    VaR is set by the normalisation rather than the tails: d ln VaR / d dof is 0.2 per unit
    at 3 but 0.6 at 2.5 and 4.5 at 2.1, so a dof that no history pins down to the first
    decimal would move the VaR by tens of percent.  At or below 2 the variance is infinite.
    """
    if dof is None or (isinstance(dof, str) and dof.strip() == ""):
        return None
    if isinstance(dof, bool) or not isinstance(dof, numbers.Real):
        raise ValueError(
            f"dof: got {_describe(dof)}; expected Student-t degrees of freedom above 2 such as 5, "
            "or leave it blank for normal draws"
        )
    v = as_real(dof)
    if not math.isfinite(v) or v <= 2.0:
        # an error cell, a number past the float range (10**400) described; "inf" stays "inf"
        got = _describe(dof) if math.isnan(v) or (math.isinf(v) and not isinstance(dof, (float, np.floating))) else f"{v:g}"
        raise ValueError(
            f"dof: got {got}; expected Student-t degrees of freedom above 2 (the variance is "
            f"infinite at 2 or below), at least {MIN_DOF:g}, such as 5, or leave it blank for "
            "normal draws"
        )
    if v < MIN_DOF:
        raise ValueError(
            f"dof: got {v:g}; expected at least {MIN_DOF:g} such as 5: the draws keep the "
            "covariance, so as dof falls to 2 the VaR shrinks to 0 (at 95%: 1.36 sigma at dof 3, "
            "0.62 at 2.1, normal 1.64) and depends more on dof than any history can tell; or "
            "leave it blank for normal draws"
        )
    return v


def check_table_size(draws: int, assets: int) -> None:
    """Refuse a scenario table larger than :data:`MAX_SCENARIO_BYTES` (``draws x assets x 8``).

    The message gives the table's size, the cap and the most draws that fit for this many
    assets.
    """
    size = draws * assets * 8
    if size > MAX_SCENARIO_BYTES:
        most = MAX_CELLS // max(assets, 1)
        raise ValueError(
            f"draws: {draws} draws of {assets} assets is {draws * assets:,} numbers "
            f"({size / 2**20:,.0f} MiB), more than the {MAX_SCENARIO_BYTES / 2**20:,.0f} MiB cap "
            f"on a scenario table (draws x assets x 8 bytes); use at most {most:,} draws for "
            f"{assets} assets"
        )


# --------------------------------------------------------------------------- simulation


def cov_factor(cov) -> np.ndarray:
    """A matrix ``L`` with ``L L' = cov``.

    The Cholesky factor (lower triangular) when ``cov`` is positive definite; otherwise,
    for a positive semi-definite ``cov`` (e.g. a perfectly correlated pair or more assets
    than history), ``L = V diag(sqrt(max(lambda, 0)))`` from the eigen-decomposition
    ``cov = V diag(lambda) V'``.
    """
    return _factor(check_covariance(cov))


def _factor(s: np.ndarray) -> np.ndarray:
    return covariance_factor(s)  # the factorisation the validation of ``s`` computed


@sized_blas(lambda cov=None, draws=DEFAULT_DRAWS, *args, **kwargs: simulation_work(None, cov, draws=draws))
def simulate_returns(
    cov, draws=DEFAULT_DRAWS, seed=DEFAULT_SEED, dof=None, mean=None, horizon=1
) -> np.ndarray:
    """Simulated asset returns over the horizon: a scenario table (draws x assets).

    Parameters
    ----------
    cov : array_like, shape (n, n)
        Per-period covariance ``S`` (positive semi-definite).
    draws : int, default :data:`DEFAULT_DRAWS`
    seed : int >= 0, default :data:`DEFAULT_SEED`
        Same seed, same model, same draws -> the same table, bit for bit, on the same numpy.
    dof : float >= 3, optional
        Student-t degrees of freedom (:func:`check_dof`); omitted means normal draws.
    mean : array_like, shape (n,), optional
        Per-period expected returns ``mu``; omitted means zero.
    horizon : int >= 1, default 1

    Returns
    -------
    ndarray, shape (draws, n)
        Row ``k`` is ``mu h + sqrt(h) s_k L z_k`` with ``z_k ~ N(0, I)`` and
        ``s_k = 1`` (normal) or ``sqrt((dof - 2) / w_k)``, ``w_k ~ chi^2(dof)`` (Student-t),
        so each row has mean ``mu h`` and covariance ``S h``.

    Notes
    -----
    ``numpy.random.SeedSequence(seed)`` spawns two independent PCG64 streams: one for the
    ``draws x n`` standard normals (filled row by row), one for the ``draws`` chi-square
    variates.  The normal stream is therefore the same for normal and Student-t draws.
    """
    s = check_covariance(cov)
    d = check_draws(draws)
    mu = check_mean(mean, s.shape[0])
    return _simulate(s, d, check_seed(seed), check_dof(dof), mu, check_horizon(horizon))


def _simulate(s: np.ndarray, draws: int, seed: int, dof, mu, h: int) -> np.ndarray:
    """:func:`simulate_returns` on validated arguments."""
    n = s.shape[0]
    check_table_size(draws, n)
    streams = np.random.SeedSequence(seed).spawn(2)
    rng_normal, rng_chi2 = (np.random.default_rng(stream) for stream in streams)
    transform = _factor(s).T * math.sqrt(h)  # row z -> z L' sqrt(h)
    out = np.empty((draws, n))
    rng_normal.standard_normal(out=out)
    scale = None if dof is None else np.sqrt((dof - 2.0) / rng_chi2.chisquare(dof, size=draws))
    step = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, draws, step):
        block = out[start : start + step]
        block[...] = block @ transform
        if scale is not None:
            block *= scale[start : start + step, None]
        if mu is not None:
            block += mu * h
    return out


@memoize(max_bytes=SCENARIO_CACHE_BYTES)  # 100,000 draws x 500 assets is 381 MB
def _scenarios(s: np.ndarray, draws: int, seed: int, dof, mu, h: int) -> np.ndarray:
    """:func:`simulate_returns` cached on the content of the model (see :mod:`xlmvar.engine._cache`),
    as a sheet asks for VaR, marginal VaR and component VaR of the same model one formula
    at a time.  The table is read-only."""
    return _simulate(s, draws, seed, dof, mu, h)


def clear_cache() -> None:
    """Forget the cached scenario tables (they are rebuilt, identically, when needed)."""
    _scenarios.cache.clear()


# --------------------------------------------------------------------------- risk figures


_OPTIONS = ("mean", "draws", "seed", "dof", "smoothing")


def _prepare(positions, cov, measure, confidence, horizon, mean, draws, seed, dof):
    """Validate every argument; return the book, model and (memoised) scenario table."""
    x = as_vector(positions, "positions")
    s = check_covariance(cov, x.size)
    name = check_measure(measure)
    c = check_confidence(confidence)
    h = check_horizon(horizon)
    d = check_draws(draws, c)
    mu = check_mean(mean, x.size)
    table = _scenarios(s, d, check_seed(seed), check_dof(dof), mu, h)
    u = x / max(float(np.abs(x).max()), np.finfo(float).tiny)  # x'Sx of 1e-320 positions underflows
    risky = not _is_zero_risk(float(u @ s @ u), u, np.sqrt(np.diag(s)))
    return x, name, c, table, risky, (np.zeros_like(x) if mu is None else mu * h)


@sized_blas(simulation_work)
def decompose(
    positions,
    cov,
    measure="var",
    confidence=0.95,
    horizon=1,
    mean=None,
    draws=DEFAULT_DRAWS,
    seed=DEFAULT_SEED,
    dof=None,
    *,
    smoothing="kernel",
    **options,
) -> Decomposition:
    """Monte Carlo VaR or ES of a book and its Euler decomposition.

    The scenario table ``R`` of :func:`simulate_returns` (normal or Student-t, horizon and
    mean applied in the draws) is decomposed exactly as a returns history is by
    :func:`xlmvar.engine.historical.decompose` with ``horizon=1``::

        P&L       p_k = R_k . x
        VaR       = -Q_a(p),  a = 1 - confidence, Q_a the numpy "linear" (R type 7) quantile
        ES        = -mean{ p_k : p_k < Q_a(p) }          (losses strictly beyond VaR)
        marginal  = -E[R | p = Q_a] (VaR, kernel-smoothed and rescaled so the components sum
                    to VaR), or -mean{ R_k : p_k < Q_a } (ES, exact)
        component = x * marginal                          (sums to the total)

    Parameters
    ----------
    positions : array_like, shape (n,)
        Signed exposures in currency (negative = short).
    cov : array_like, shape (n, n)
        Per-period covariance ``S`` (positive semi-definite).
    measure : {"var", "es"}
    confidence : float in [0.5, 1), default 0.95
    horizon : int >= 1, default 1
        Periods; the draws have covariance ``S h`` and mean ``mu h``.
    mean : array_like, shape (n,), optional
        Per-period expected returns; omitted means zero.
    draws : int, default :data:`DEFAULT_DRAWS`
        At least :func:`min_draws` (``10 / (1 - confidence)``, and 100).
    seed : int >= 0, default :data:`DEFAULT_SEED`
    dof : float >= 3, optional
        Student-t degrees of freedom (covariance still ``S h``; :func:`check_dof`); omitted
        means normal.
    smoothing : {"kernel", "scenario"}, default "kernel"
        VaR decomposition rule of :func:`xlmvar.engine.historical.decompose`.

    Returns
    -------
    Decomposition
        ``total`` (a positive loss), ``marginal`` (dTotal/dx) and ``component``.

    Notes
    -----
    A book without risk (``x' S x = 0``: no positions, or a perfect hedge) gets the exact
    answer of :mod:`xlmvar.engine.parametric`: total ``-x.mu h``, marginal ``-mu h`` (0 without a
    mean), rather than the sampling noise of the simulated mean.

    The draws do not depend on ``positions`` (common random numbers), so VaR(x + trade) -
    VaR(x) has far less noise than either figure.  See :func:`standard_error` for the
    sampling error of the total.
    """
    check_options(options, "montecarlo", _OPTIONS)
    x, name, c, table, risky, drift = _prepare(
        positions, cov, measure, confidence, horizon, mean, draws, seed, dof
    )
    if not risky:
        # no positions or a perfect hedge: the P&L is the known mean, not sampling noise
        marginal = -drift + 0.0
        return Decomposition(float(x @ marginal) + 0.0, marginal, x * marginal + 0.0)
    return historical.decompose_scenarios(x, table, name, c, 1, smoothing=smoothing)


@sized_blas(simulation_work)
def standalone(
    positions,
    cov,
    measure="var",
    confidence=0.95,
    horizon=1,
    mean=None,
    draws=DEFAULT_DRAWS,
    seed=DEFAULT_SEED,
    dof=None,
    *,
    smoothing="kernel",
    **options,
) -> np.ndarray:
    """Each position's Monte Carlo VaR or ES held alone, on the same draws as :func:`decompose`.

    ``-Q_a(x_i R_i)`` for VaR, ``-mean{ x_i R_ki < Q_a }`` for ES.
    """
    check_options(options, "montecarlo", _OPTIONS)
    x, name, c, table, _, _ = _prepare(
        positions, cov, measure, confidence, horizon, mean, draws, seed, dof
    )
    return historical.standalone_scenarios(x, table, name, c, 1, smoothing=smoothing)


def pnl_standard_error(pnl, confidence=0.95, measure="var") -> float:
    """Standard error of the VaR or ES estimated from ``n`` i.i.d. simulated P&L values.

    VaR (an order statistic, ``p = 1 - confidence``)::

        se(VaR) = sqrt(p (1 - p) / n) / f(q_p)

    the asymptotic standard deviation of a sample quantile, with the P&L density ``f`` at the
    quantile ``q_p`` estimated by a Gaussian kernel with Silverman's bandwidth
    ``0.9 min(sd, IQR / 1.34) n^(-1/5)`` (:func:`xlmvar.engine.historical.silverman_bandwidth`, the
    bandwidth the kernel decomposition uses).

    ES (the tail mean, written as ``VaR + E[(L - VaR)^+] / p`` with ``L = -P&L``, whose
    derivative in VaR vanishes, so the error of VaR does not enter to first order)::

        se(ES) = sd((L - VaR)^+) / (p sqrt(n))
               = sqrt((Var(L | L > VaR) + (1 - p) (ES - VaR)^2) / (n p))

    Both are large-sample approximations; they assume independent draws, which plain Monte
    Carlo provides.  A P&L that does not vary (an empty book) has standard error 0.
    """
    c = check_confidence(confidence)
    name = check_measure(measure)
    values = as_vector(pnl, "pnl")
    n = values.size
    if n < 2:
        raise ValueError("pnl: has 1 value; at least 2 scenarios are needed")
    p = 1.0 - c
    q = float(np.quantile(values, p, method="linear"))
    if name == "es":
        excess = np.maximum(-values + q, 0.0)
        return float(np.std(excess, ddof=1) / (p * math.sqrt(n)))
    if float(np.ptp(values)) == 0.0:
        return 0.0
    bandwidth = historical.silverman_bandwidth(values)
    density = float(np.mean(normal_pdf((values - q) / bandwidth))) / bandwidth
    return math.sqrt(p * (1.0 - p) / n) / density


def standard_error(
    positions,
    cov,
    measure="var",
    confidence=0.95,
    horizon=1,
    mean=None,
    draws=DEFAULT_DRAWS,
    seed=DEFAULT_SEED,
    dof=None,
) -> float:
    """Monte Carlo standard error of the book's VaR or ES (see :func:`pnl_standard_error`).

    Same arguments and the same draws as :func:`decompose`.  The figure from another seed
    typically differs from this one by about ``sqrt(2)`` times the standard error.
    """
    x, name, c, table, risky, _ = _prepare(
        positions, cov, measure, confidence, horizon, mean, draws, seed, dof
    )
    if not risky:
        return 0.0
    se = pnl_standard_error(table @ x, c, name)
    check_finite_result("positions", "the Monte Carlo standard error of these positions with this covariance", se)
    return se


def var_standard_error(
    positions,
    cov,
    confidence=0.95,
    horizon=1,
    mean=None,
    draws=DEFAULT_DRAWS,
    seed=DEFAULT_SEED,
    dof=None,
) -> float:
    """Monte Carlo standard error of the book's VaR: ``sqrt(p(1-p)/n) / f(q)`` (kernel ``f``)."""
    return standard_error(positions, cov, "var", confidence, horizon, mean, draws, seed, dof)
