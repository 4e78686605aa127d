"""Tests for risk by group (GROUPVAR, GROUPES): xlmvar.engine.groups.

References: for every method, the sub-book's VaR/ES computed directly (closed form for
normal, numpy's type-7 quantile and a tail mean for historical and pnl, the method itself on
the zero-padded sub-book for Cornish-Fisher and Monte Carlo) and the group components summed
by a literal loop over the members' Euler components.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from xlmvar.engine import groups, risk
from xlmvar.excel import analytics

LABELS = ["Rates", "Equity", "Rates", "FX", "Equity", "Credit"]
X = np.array([3e6, 2e6, -1e6, 1.5e6, 2.5e6, -0.5e6])
N = X.size


@pytest.fixture(scope="module")
def returns():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(N, N)) * 0.004
    return rng.standard_t(5, size=(250, N)) @ a + 0.0002


@pytest.fixture(scope="module")
def models(returns):
    return {
        "normal": np.cov(returns.T),
        "montecarlo": np.cov(returns.T),
        "historical": returns,
        "cornish-fisher": returns,
        "pnl": returns * X,  # P&L table of the book as held; scales of 1
    }


def _positions(method):
    return np.ones(N) if method == "pnl" else X


def _direct(method, measure, sub, model, options):
    """The sub-book's risk computed without the group machinery."""
    if method == "normal":
        sigma = math.sqrt(sub @ model @ sub)
        z = norm.ppf(0.95)
        return sigma * (z if measure == "var" else norm.pdf(z) / 0.05)
    if method in ("historical", "pnl"):
        p = model @ sub
        q = np.quantile(p, 0.05)
        return -q if measure == "var" else -p[p < q].mean()
    return risk.decompose(sub, model, measure, 0.95, 1, method, **options).total


OPTIONS = {"montecarlo": {"draws": 20_000, "seed": 3}}


@pytest.mark.parametrize("measure", ["var", "es"])
@pytest.mark.parametrize("method", ["normal", "historical", "cornish-fisher", "montecarlo", "pnl"])
def test_every_method_against_brute_force(models, method, measure):
    model, x, options = models[method], _positions(method), OPTIONS.get(method, {})
    result = groups.group_risk(x, model, LABELS, measure, method=method, **options)
    assert result.labels == ["Rates", "Equity", "FX", "Credit"]
    book = risk.decompose(x, model, measure, 0.95, 1, method, **options)
    for g, label in enumerate(result.labels):
        sub = np.array([x[i] if LABELS[i] == label else 0.0 for i in range(N)])
        assert result.standalone[g] == pytest.approx(_direct(method, measure, sub, model, options), rel=1e-10)
        component = 0.0
        for i in range(N):
            if LABELS[i] == label:
                component += book.component[i]
        assert result.component[g] == pytest.approx(component, rel=1e-12, abs=1e-9)
        assert result.diversification[g] == pytest.approx(result.standalone[g] - component, rel=1e-12, abs=1e-9)
    assert result.component.sum() == pytest.approx(book.total, rel=1e-12)
    assert result.share.sum() == pytest.approx(1.0, rel=1e-12)
    assert result.total == book.total


def test_one_group_is_the_book_and_singletons_are_the_positions(models):
    cov = models["normal"]
    whole = groups.group_risk(X, cov, ["All"] * N)
    assert whole.standalone[0] == pytest.approx(risk.portfolio_var(X, cov), rel=1e-14)
    assert whole.diversification[0] == pytest.approx(0.0, abs=1e-6)
    single = groups.group_risk(X, cov, [f"p{i}" for i in range(N)])
    assert single.standalone == pytest.approx(risk.individual_var(X, cov), rel=1e-12)
    assert single.component == pytest.approx(risk.component_var(X, cov), rel=1e-12)


def test_labels_from_cells():
    assert groups.check_labels(np.array([[1.0], [2.0], ["a "]], dtype=object), 3) == ["1", "2", "a"]
    with pytest.raises(ValueError, match="groups: item 2 is blank; expected a label for every position"):
        groups.check_labels(["a", " ", "b"], 3)
    with pytest.raises(ValueError, match="groups: has 2 cells but there are 3 positions"):
        groups.check_labels(["a", "b"], 3)
    with pytest.raises(ValueError, match="groups: item 1 holds an error or NaN"):
        groups.check_labels([float("nan"), "b"], 2)


def test_excel_table(models):
    cov = models["normal"]
    table = analytics.GROUPVAR(X.reshape(-1, 1), cov, np.array(LABELS, dtype=object).reshape(-1, 1), 0.99, 10)
    assert table[0] == ["Group", "Standalone VaR", "Component VaR", "% of VaR", "Diversification benefit"]
    assert [row[0] for row in table[1:]] == ["Rates", "Equity", "FX", "Credit", "Total"]
    var = norm.ppf(0.99) * math.sqrt(X @ cov @ X) * math.sqrt(10)
    assert table[-1][1] == pytest.approx(var, rel=1e-12)
    assert table[-1][2] == pytest.approx(var, rel=1e-12)
    assert sum(row[2] for row in table[1:-1]) == pytest.approx(var, rel=1e-12)
    assert sum(row[4] for row in table[1:-1]) == pytest.approx(table[-1][4], rel=1e-12)
    assert sum(row[1] for row in table[1:-1]) - var == pytest.approx(table[-1][4], rel=1e-12)
    es = analytics.GROUPES(X, models["historical"], LABELS, method="historical")
    assert es[0][1] == "Standalone ES"
    assert es[-1][2] == pytest.approx(risk.portfolio_es(X, models["historical"], method="historical"), rel=1e-14)


OFFICE_JS = r'''
import asyncio, json, sys
import xlwings.server as server
import xlmvar.excel.analytics as analytics

meta = server.custom_functions_meta(analytics)
names = sorted(f["name"] for f in meta["functions"])
body = {  # as xlwings' Office.js code sends it: 2-D arrays, an omitted argument as null
    "func_name": "GROUPVAR",
    "args": [[[5000000], [3000000], [2000000]],
             [[0.0225, -0.0045, 0.018], [-0.0045, 0.01, 0.006], [0.018, 0.006, 0.36]],
             [["Equity"], ["Rates"], ["Equity"]], [[0.95]], None, [["normal"]], None, None, None, None],
    "caller_address": "Sheet1!A1", "content_language": "en-US", "version": "0.37.8", "runtime": "1.4",
}
print(json.dumps({"names": names, "result": asyncio.run(server.custom_functions_call(body, analytics))}))
'''


def test_through_xlwings_office_js_runtime():
    # The seed's SPY/TLT/BTC book on its annual covariance (vols 15/10/60%, correlations
    # -0.3, 0.2, 0.1), SPY and BTC as one desk.  By hand: x'Sx = 2.3895e12, so
    # VaR = 1.644854 * 1,545,801 = 2,542,616; the Equity desk alone: 2.3625e12 ->
    # 1.644854 * 1,537,042 = 2,528,210.
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "XLWINGS_ON_SERVER": "true", "XLWINGS_LICENSE_KEY": "noncommercial"}
    out = subprocess.run([sys.executable, "-c", OFFICE_JS], capture_output=True, text=True, env=env, check=True, timeout=120)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["names"] == sorted(["GROUPVAR", "GROUPES", "FACTORLOADINGS", "FACTORCOV", "FACTORVAR",
                                   "STRESSPNL", "WORSTDAYS", "ROLLINGVAR"])
    table = got["result"]
    assert [row[0] for row in table] == ["Group", "Equity", "Rates", "Total"]
    z = norm.ppf(0.95)
    assert table[3][2] == pytest.approx(z * math.sqrt(2.3895e12), rel=1e-12)
    assert table[1][1] == pytest.approx(z * math.sqrt(2.3625e12), rel=1e-12)
    assert table[2][1] == pytest.approx(z * math.sqrt(0.09e12), rel=1e-12)
    assert table[1][2] + table[2][2] == pytest.approx(table[3][2], rel=1e-12)


def test_normal_with_a_mean_and_horizon(models):
    # sub-book: z sigma_g sqrt(h) - x_g' mu h (DESIGN's delta-normal with a mean)
    cov, mu, h = models["normal"], np.linspace(-0.001, 0.002, N), 10
    result = groups.group_risk(X, cov, LABELS, "var", 0.99, h, "normal", mean=mu)
    for g, label in enumerate(result.labels):
        sub = np.array([X[i] if LABELS[i] == label else 0.0 for i in range(N)])
        expected = norm.ppf(0.99) * math.sqrt(sub @ cov @ sub) * math.sqrt(h) - sub @ mu * h
        assert result.standalone[g] == pytest.approx(expected, rel=1e-12)
    assert result.component.sum() == pytest.approx(
        norm.ppf(0.99) * math.sqrt(X @ cov @ X * h) - X @ mu * h, rel=1e-12)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(N))), st.sampled_from(["normal", "historical", "pnl"]))
def test_permuting_positions_leaves_the_groups_alone(models, order, method):
    # reorder positions, labels and the model's assets together: every group figure is unchanged
    model, x = models[method], _positions(method)
    order = np.array(order)
    shuffled = model[np.ix_(order, order)] if method == "normal" else model[:, order]
    a = groups.group_risk(x, model, LABELS, method=method)
    b = groups.group_risk(x[order], shuffled, [LABELS[i] for i in order], method=method)
    b_by_label = dict(zip(b.labels, zip(b.standalone, b.component)))
    for label, standalone, component in zip(a.labels, a.standalone, a.component):
        assert b_by_label[label][0] == pytest.approx(standalone, rel=1e-9)
        assert b_by_label[label][1] == pytest.approx(component, rel=1e-9, abs=1e-6)
