"""Delta-normal VaR/ES: hand-worked references, finite differences and identities."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import xlmvar
from xlmvar.engine import parametric

Z95 = 1.6448536269514722  # NORM.S.INV(0.95), Abramowitz & Stegun table 26.5
PHI_Z95 = 0.10313564037537128  # standard normal density at Z95

# The seed's inputs (SPY/TLT/BTC): values 5m/3m/2m, vols 15/10/60%, corr -0.3, 0.2, 0.1.
SEED_X = np.array([5e6, 3e6, 2e6])
SEED_COV = xlmvar.cov_from_corr([0.15, 0.10, 0.60], [[1, -0.3, 0.2], [-0.3, 1, 0.1], [0.2, 0.1, 1]])


def test_seed_example_by_hand():
    # Worked by hand with weights w = (0.5, 0.3, 0.2):
    #   var = .25*.0225 + .09*.01 + .04*.36 + 2*.5*.3*(-.3)*.15*.10 + 2*.5*.2*.2*.15*.60
    #       + 2*.3*.2*.1*.10*.60 = .005625 + .0009 + .0144 - .00135 + .0036 + .00072 = .023895
    #   S w = (.0135, .00195, .0828)
    sigma_w = np.sqrt(0.023895)
    sw = np.array([0.0135, 0.00195, 0.0828])
    d = parametric.decompose(SEED_X, SEED_COV, "var", 0.95)
    assert d.total == pytest.approx(Z95 * sigma_w * 1e7, rel=1e-12)
    assert d.total == pytest.approx(2_542_616.0, abs=1.0)
    np.testing.assert_allclose(d.marginal, Z95 * sw / sigma_w, rtol=1e-12)
    np.testing.assert_allclose(d.component, SEED_X * Z95 * sw / sigma_w, rtol=1e-12)
    # the seed prints 9.1%, $840,000 and a negative TLT marginal VaR: none follows from its inputs
    assert xlmvar.portfolio_sigma(SEED_X, SEED_COV) / 1e7 == pytest.approx(0.154580, abs=5e-7)
    assert d.marginal[1] > 0


def test_seed_individual_es_and_diversification_by_hand():
    individual = xlmvar.individual_var(SEED_X, SEED_COV)
    np.testing.assert_allclose(individual, Z95 * np.array([5e6 * 0.15, 3e6 * 0.10, 2e6 * 0.60]), rtol=1e-12)
    es = xlmvar.portfolio_es(SEED_X, SEED_COV)
    assert es == pytest.approx(PHI_Z95 / 0.05 * np.sqrt(0.023895) * 1e7, rel=1e-12)
    benefit = xlmvar.diversification_benefit(SEED_X, SEED_COV)
    assert benefit == pytest.approx(individual.sum() - Z95 * np.sqrt(0.023895) * 1e7, rel=1e-12)


def test_performance_analytics_gaussian_portfolio_var():
    # PerformanceAnalytics VaR(edhec[1:100, 1:3], weights = c(.3, .4, .3), p = .95,
    # method = "gaussian", portfolio_method = "component") = 0.012916 (mean included; sample
    # covariance with n - 1), xlmvar/data/README.md.
    returns = _edhec()[:100, :3]
    w = np.array([0.3, 0.4, 0.3])
    d = xlmvar.decompose(w, np.cov(returns, rowvar=False), mean=returns.mean(axis=0))
    assert d.total == pytest.approx(0.012916, abs=5e-7)
    assert d.component.sum() == pytest.approx(d.total, rel=1e-12)


def test_performance_analytics_single_asset_gaussian_var_and_es():
    # column 1 alone: Gaussian VaR -0.012133 and ES -0.017133 as returns (losses 0.012133, 0.017133).
    # For a single asset PerformanceAnalytics takes the second central moment (divides by n),
    # unlike its portfolio figure above, which uses the n - 1 covariance.
    r = _edhec()[:100, :1]
    cov, mean = np.var(r, ddof=0).reshape(1, 1), r.mean(axis=0)
    assert xlmvar.portfolio_var([1.0], cov, mean=mean) == pytest.approx(0.012133, abs=5e-7)
    assert xlmvar.portfolio_es([1.0], cov, mean=mean) == pytest.approx(0.017133, abs=5e-7)


def _edhec():
    from pathlib import Path

    path = Path(xlmvar.__file__).parent / "data" / "edhec.csv"
    if not path.exists():  # before the project copy exists, the shared reference data
        path = Path(__file__).resolve().parents[2] / "shared" / "data" / "edhec.csv"
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, 14))


def _random_book(seed, n=5):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    return rng.normal(size=n) * 1e6, a @ a.T / n * 1e-4, rng.normal(size=n) * 1e-4


@pytest.mark.parametrize("measure", ["var", "es"])
@pytest.mark.parametrize("with_mean", [False, True])
def test_marginal_is_finite_difference(measure, with_mean):
    x, cov, mu = _random_book(1)
    mean = mu if with_mean else None
    d = parametric.decompose(x, cov, measure, 0.99, 10, mean)
    step = 1e-3 * np.abs(x).max()
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = step
        up = parametric.decompose(x + e, cov, measure, 0.99, 10, mean).total
        down = parametric.decompose(x - e, cov, measure, 0.99, 10, mean).total
        assert d.marginal[i] == pytest.approx((up - down) / (2 * step), rel=1e-6, abs=1e-10)


def test_mean_and_horizon_conventions():
    x, cov, mu = _random_book(2)
    base = parametric.decompose(x, cov, "var", 0.95, 1).total
    assert parametric.decompose(x, cov, "var", 0.95, 4).total == pytest.approx(2 * base, rel=1e-12)
    with_mean = parametric.decompose(x, cov, "var", 0.95, 4, mu).total
    assert with_mean == pytest.approx(2 * base - 4 * x @ mu, rel=1e-12)


def test_zero_risk_books_are_zero_not_nan():
    cov = np.array([[0.04, 0.04], [0.04, 0.04]])  # perfectly correlated, equal vols
    for x in ([0.0, 0.0], [1e6, -1e6]):
        d = parametric.decompose(x, cov)
        assert d.total == 0.0
        np.testing.assert_array_equal(d.marginal, 0.0)
        np.testing.assert_array_equal(d.percent, 0.0)


def test_incremental_var_exact_and_marginal_estimate():
    x, cov, _ = _random_book(3)
    trade = np.zeros_like(x)
    trade[2] = 0.3 * abs(x[2]) + 1e5
    inc = xlmvar.incremental_var(x, cov, trade)
    assert inc.exact == pytest.approx(xlmvar.portfolio_var(x + trade, cov) - xlmvar.portfolio_var(x, cov))
    assert inc.approximate == pytest.approx(xlmvar.marginal_var(x, cov) @ trade)
    small = xlmvar.incremental_var(x, cov, trade * 1e-4)
    assert small.exact == pytest.approx(small.approximate, rel=1e-3)


books = st.integers(2, 6).flatmap(
    lambda n: st.tuples(
        arrays(float, n, elements=st.floats(-1e7, 1e7, allow_subnormal=False)),
        arrays(float, (n, n), elements=st.floats(-1.0, 1.0, allow_subnormal=False)),
    )
)


def _cov_from(a):
    return a @ a.T * 1e-3 + np.eye(a.shape[0]) * 1e-6


@settings(max_examples=60, deadline=None)
@given(books, st.sampled_from(["var", "es"]), st.floats(0.5, 0.999))
def test_euler_sum_and_percent(book, measure, confidence):
    x, a = book
    d = parametric.decompose(x, _cov_from(a), measure, confidence)
    assert d.component.sum() == pytest.approx(d.total, rel=1e-9, abs=1e-6)
    if d.total > 0:
        assert d.percent.sum() == pytest.approx(1.0, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(books, st.floats(0.01, 100.0))
def test_homogeneous_degree_one(book, k):
    x, a = book
    cov = _cov_from(a)
    d, dk = parametric.decompose(x, cov), parametric.decompose(k * x, cov)
    assert dk.total == pytest.approx(k * d.total, rel=1e-9, abs=1e-6)
    np.testing.assert_allclose(dk.marginal, d.marginal, rtol=1e-7, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(books, st.randoms(use_true_random=False))
def test_permuting_assets_permutes_decomposition(book, random):
    x, a = book
    cov = _cov_from(a)
    p = list(range(x.size))
    random.shuffle(p)
    d, dp = parametric.decompose(x, cov), parametric.decompose(x[p], cov[np.ix_(p, p)])
    assert dp.total == pytest.approx(d.total, rel=1e-12, abs=1e-9)
    np.testing.assert_allclose(dp.component, d.component[p], rtol=1e-9, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(books, st.integers(1, 250))
def test_square_root_of_time(book, h):
    x, a = book
    cov = _cov_from(a)
    assert parametric.decompose(x, cov, horizon=h).total == pytest.approx(
        np.sqrt(h) * parametric.decompose(x, cov).total, rel=1e-12, abs=1e-9
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"confidence": 95}, "use 95% or 0.95"),
        ({"confidence": 1.0}, "strictly between 0 and 1"),
        ({"horizon": 0}, "horizon: got 0; expected a positive whole number"),
        ({"horizon": 2.5}, "horizon: got 2.5"),
        ({"measure": "cvar"}, "measure: got 'cvar'"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parametric.decompose(SEED_X, SEED_COV, **kwargs)


def test_bad_covariances_are_explained():
    with pytest.raises(ValueError, match="cov: is 2 x 2 but there are 3 positions"):
        parametric.decompose(SEED_X, SEED_COV[:2, :2])
    bad = SEED_COV.copy()
    bad[0, 1] += 0.01
    with pytest.raises(ValueError, match="cov: is not symmetric: row 1, column 2"):
        parametric.decompose(SEED_X, bad)
    with pytest.raises(ValueError, match="NEARESTCORR"):
        xlmvar.cov_from_corr([0.1, 0.1, 0.1], [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]])
    with pytest.raises(ValueError, match="positions: item 2 holds a blank cell"):
        parametric.decompose([1.0, None, 2.0], SEED_COV)
