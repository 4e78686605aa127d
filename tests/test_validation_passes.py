"""The cheap passes that validate a big input are exact (issue 13: validation priced right).

Three shortcuts keep a cold call over a returns history near one pass over the data; each is
pinned here against a brute-force loop or a second implementation:

* the finiteness screen (BLAS row sums of a table, numpy's sum of anything else) never lets a
  NaN or an infinity through, in any layout, and sends finite values whose sums overflow to
  the exact test;
* a history-based call screens its table with the P&L it needs anyway (``finite_product``):
  no NaN or infinity gets through, in any layout, whatever the positions (zeros included,
  even with a BLAS that skips products by zero), and the cell is named as before;
* the level check (percentages, prices) reads the table's least value and the columns that
  start above 1, and refuses exactly what the rule says, naming the same cell;
* the empirical quantile from one partition equals ``numpy.quantile`` to the last bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from xlmvar.engine import historical
from xlmvar.engine._validation import as_matrix, as_vector, check_return_levels, finite_product

RNG = np.random.default_rng(20261128)


def _unaligned(table):
    """A C-ordered copy of ``table`` one byte off an 8-byte boundary."""
    out = np.ndarray(table.shape, float, buffer=bytearray(table.nbytes + 1), offset=1)
    out[...] = table
    assert not out.flags.aligned
    return out


def _layouts(table):
    """The table as C-ordered, Fortran-ordered, strided (every other column) and unaligned arrays."""
    wide = np.repeat(table, 2, axis=1)
    return {"C": np.ascontiguousarray(table), "F": np.asfortranarray(table), "strided": wide[:, ::2],
            "unaligned": _unaligned(table)}


def _first_bad_cell(table):
    """Brute force: (row, column), 1-based, of the first non-finite cell, row by row."""
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            if not np.isfinite(table[i, j]):
                return i + 1, j + 1
    return None


# tables from 250,000 values are screened by BLAS, smaller ones by numpy: both are covered
@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (1, 40), (40, 1), (2500, 7), (2500, 100), (1, 250000), (250000, 1)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_finiteness_screen_lets_no_nan_or_infinity_through(shape, bad):
    for trial in range(4):
        table = RNG.standard_normal(shape) * 0.01
        cells = [(0, 0), (shape[0] - 1, shape[1] - 1), tuple(int(RNG.integers(n)) for n in shape)]
        table[cells[trial % 3]] = bad
        if trial == 3:  # two of them: the first one row by row is named
            table[tuple(int(RNG.integers(n)) for n in shape)] = -bad
        row, column = _first_bad_cell(table)
        for arr in _layouts(table).values():
            with pytest.raises(ValueError, match=rf"^returns: row {row}, column {column} holds an? "):
                as_matrix(arr, "returns")


class _SkippingBlas(np.ndarray):
    """A table whose ``@`` skips the columns whose weight is 0, as the reference BLAS's
    ``dgemv`` does (``IF (X(JX).NE.ZERO)``): NaN x 0 never happens there."""

    def __matmul__(self, vector):
        used = np.asarray(vector) != 0.0
        return np.asarray(self)[:, used] @ np.asarray(vector)[used]


def _positions(size, zeros):
    x = RNG.standard_normal(size) * 1e6
    x[RNG.permutation(size)[:zeros]] = 0.0
    return x


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (40, 1), (2500, 7), (2500, 100)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_pnl_screen_lets_no_nan_or_infinity_through(shape, bad):
    for trial in range(6):
        table = RNG.standard_normal(shape) * 0.01
        x = _positions(shape[1], zeros=[0, 1, shape[1]][trial % 3])
        cell = tuple(int(RNG.integers(n)) for n in shape)
        if trial >= 3 and (x == 0).any():  # the bad value where the position is 0
            cell = (cell[0], int(np.flatnonzero(x == 0)[0]))
        table[cell] = bad
        row, column = _first_bad_cell(table)
        for arr in [*_layouts(table).values(), table.view(_SkippingBlas)]:
            with pytest.raises(ValueError, match=rf"^returns: row {row}, column {column} holds an? "):
                finite_product(arr, x, "returns")


def test_the_pnl_screen_returns_the_product_and_leaves_an_overflow_to_the_caller():
    table = RNG.standard_normal((300, 5)) * 0.01
    x = _positions(5, zeros=2)
    for arr in _layouts(table).values():
        np.testing.assert_array_equal(finite_product(arr, x, "returns"), arr @ x)
    table[7] = 1e300  # finite values, a product that overflows: not the table's fault
    out = finite_product(table, np.full(5, 1e10), "returns")
    assert np.isinf(out[7]) and np.isfinite(np.delete(out, 7)).all()


@pytest.mark.parametrize("method", ["historical", "cornish-fisher"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_history_with_a_bad_cell_is_refused_by_name_through_the_public_api(method, bad):
    import xlmvar

    table = RNG.standard_normal((600, 500)) * 0.01  # past the BLAS screen's size
    x = _positions(500, zeros=1)
    zero = int(np.flatnonzero(x == 0)[0])
    for cell in [(599, 499), (123, zero)]:
        bad_table = table.copy()
        bad_table[cell] = bad
        with pytest.raises(ValueError, match=rf"^returns: row {cell[0] + 1}, column {cell[1] + 1} holds an? "):
            xlmvar.decompose(x, bad_table, method=method)
        with pytest.raises(ValueError, match=rf"^returns: row {cell[0] + 1}, column {cell[1] + 1} holds an? "):
            xlmvar.standalone(x, bad_table, method=method)


def test_finite_values_whose_sums_overflow_pass_the_exact_test():
    # 1.5e308 + 1.5e308 overflows a sum; the element-wise test then finds them finite
    table = RNG.standard_normal((50000, 6))  # screened by BLAS
    table[7, 2], table[7, 3], table[49, 5] = 1.5e308, 1.5e308, -1.5e300
    vector = RNG.standard_normal(9)
    vector[4], vector[5] = 1.7e308, 1.7e308
    np.testing.assert_array_equal(as_vector(vector, "positions"), vector)
    for arr in _layouts(table).values():
        out = as_matrix(arr, "model")
        assert out[7, 2] == 1.5e308 and out[49, 5] == -1.5e300
        np.testing.assert_array_equal(out, table)


def _levels_rule(table):
    """Brute force of the rule: the first cell <= -1 row by row, else the first column whose
    values (two or more) are all above 1; ``None`` if the table passes."""
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            if table[i, j] <= -1.0:
                return "cell", i + 1, j + 1
    if table.shape[0] >= 2:
        for j in range(table.shape[1]):
            if all(table[i, j] > 1.0 for i in range(table.shape[0])):
                return "column", j + 1
    return None


def test_level_check_refuses_exactly_what_the_rule_says():
    seen = set()
    for trial in range(400):
        rows, cols = int(RNG.integers(1, 9)), int(RNG.integers(1, 6))
        table = RNG.uniform(-1.2, 3.0, (rows, cols))
        if trial % 3 == 0:  # mostly plausible returns, with the edges placed by hand
            table = RNG.uniform(-0.5, 0.9, (rows, cols))
            table[int(RNG.integers(rows)), int(RNG.integers(cols))] = RNG.choice([-1.0, -0.999999, 1.0, 1.000001])
        if trial % 5 == 0:  # a column above 1 below its first row only: not a price column
            table[1:, int(RNG.integers(cols))] = 2.0
        expected = _levels_rule(table)
        seen.add(None if expected is None else expected[0])
        if expected is None:
            check_return_levels(table)
        elif expected[0] == "cell":
            with pytest.raises(ValueError, match=rf"^returns: row {expected[1]}, column {expected[2]} is "):
                check_return_levels(table)
        else:
            with pytest.raises(ValueError, match=rf"^returns: every value in column {expected[1]} is above 1 "):
                check_return_levels(table)
    assert seen == {None, "cell", "column"}  # every branch was exercised


def test_minus_one_exactly_is_refused_and_just_above_passes():
    table = np.full((4, 2), 0.01)
    table[2, 1] = -1.0
    with pytest.raises(ValueError, match=r"^returns: row 3, column 2 is -1, a loss of 100%"):
        check_return_levels(table)
    table[2, 1] = np.nextafter(-1.0, 0.0)
    check_return_levels(table)


@pytest.mark.parametrize("size", [2, 3, 20, 100, 2500])
def test_empirical_quantiles_place_signed_zeros_as_numpy_does(size):
    # 0.0 and -0.0 are equal to a partition: which one lands at a quantile's index depends on
    # the partition points, so they must be numpy's own (the ends included)
    rng = np.random.default_rng(size)
    for _ in range(40):
        values = np.round(rng.standard_normal(size) * 1e-3)  # 0.0 and -0.0 in random order
        values[rng.random(size) < 0.05] = 1e-3
        for probs in (np.array([0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0]), 0.05, 0.01):
            got = np.asarray(historical.empirical_quantiles(values, probs))
            want = np.asarray(np.quantile(values, probs))
            np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))


@pytest.mark.parametrize("size", [1, 2, 3, 10, 19, 20, 21, 100, 250, 2500, 2501])
def test_empirical_quantiles_equal_numpy_to_the_last_bit(size):
    probs = np.concatenate([RNG.random(6), [0.0, 1.0, 0.5, 0.25, 0.75, 0.05, 0.01, 0.001, 0.999]])
    for trial in range(12):
        values = RNG.standard_normal(size) * 10.0 ** RNG.uniform(-6, 8)
        if trial % 3 == 1:
            values = np.round(values)  # ties
        if trial % 4 == 3:
            values = -np.abs(values) * 0.0  # signed zeros
        got = historical.empirical_quantiles(values, probs)
        want = np.quantile(values, probs)
        np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
        one = historical.empirical_quantiles(values, 0.05)
        assert one.shape == () and one.view(np.int64) == np.quantile(values, 0.05).view(np.int64)


@pytest.mark.parametrize("probs", [-0.1, 1.1, np.nan, (0.5, 2.0)])
def test_empirical_quantiles_refuse_what_numpy_refuses(probs):
    values = RNG.standard_normal(50)
    with pytest.raises(ValueError):
        np.quantile(values, probs)
    with pytest.raises(ValueError, match="quantiles must be in the range"):
        historical.empirical_quantiles(values, probs)


@pytest.mark.parametrize("method", ["lower", "higher", "nearest", "midpoint", "hazen", "weibull", "median_unbiased"])
def test_other_quantile_methods_are_numpys(method):
    values = RNG.standard_normal(137)
    np.testing.assert_array_equal(
        historical.empirical_quantiles(values, (0.05, 0.5), method), np.quantile(values, (0.05, 0.5), method=method)
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_vector_screen_lets_no_nan_or_infinity_through(bad):
    for size in (1, 2, 17, 1000):
        for where in {0, size // 2, size - 1}:
            vector = RNG.standard_normal(size)
            vector[where] = bad
            for arr in (vector, np.repeat(vector, 2)[::2]):  # contiguous and strided
                with pytest.raises(ValueError, match=rf"^positions: item {where + 1} holds an? "):
                    as_vector(arr, "positions")


# --- what the passes must not let through: a P&L that overflows ---------------------------


@pytest.mark.parametrize("measure", ["var", "es"])
def test_a_pnl_that_overflows_is_refused_not_ranked(measure):
    # valid returns (> -1, no column all above 1) and finite positions whose product overflows:
    # period 38's P&L is 1e200 * (3 * 1e109 - 3.0001e109), exactly -1e305, but in floating
    # point the products are inf and their sum inf - inf = NaN; numpy's quantile returned NaN
    # here, a partition ranks NaN last and gave a finite "VaR" (an adversarial review found it)
    import xlmvar

    r = np.random.default_rng(0).normal(0, 0.01, (100, 4))
    r[37] = [1e109, 1e109, 1e109, 3.0001e109]
    x = np.array([1e200, 1e200, 1e200, -1e200])
    with pytest.raises(ValueError, match=r"^positions: .* too large or too small"):
        xlmvar.decompose(x, r, measure=measure, method="historical")


@pytest.mark.parametrize("measure", ["var", "es"])
def test_a_pnl_table_whose_book_overflows_is_refused(measure):
    # the pnl method sums a table of P&L in currency: two finite 1.5e308 sum to inf
    import xlmvar

    table = np.random.default_rng(2).normal(0, 1e3, (100, 2))
    table[10] = [1.5e308, 1.5e308]
    with pytest.raises(ValueError, match=r"^positions: .* too large or too small"):
        xlmvar.decompose(np.ones(2), table, measure=measure, method="pnl")


def test_one_huge_return_is_refused_not_a_flat_book():
    # a return of 1e308 makes the P&L (and the gross exposure) infinite: the book used to be
    # judged flat, VaR 0 with a component of -inf
    import xlmvar

    r = np.random.default_rng(1).normal(0, 0.01, (50, 3))
    r[0, 0] = 1e308
    with pytest.raises(ValueError, match=r"^positions: .* too large or too small"):
        xlmvar.decompose(np.array([1e6, -2e6, 3e6]), r, method="historical")


@pytest.mark.parametrize("method", ["historical", "cornish-fisher"])
@pytest.mark.filterwarnings("error")  # and the overflow of the range is no warning in the user's console
def test_a_book_whose_spread_overflows_is_never_called_flat(method):
    # P&L of +-9e307 (finite), but its range and the gross exposure overflow to inf, and
    # inf <= inf called the book flat: a VaR of 0 (an adversarial review found it); the
    # figure is 1e308 times a unit position's (historical: the 5% quantile of ten +0.9 and
    # ten -0.9, so 9e307), or refused
    import xlmvar

    r = np.tile([[0.9], [-0.9]], (10, 1))
    unit = xlmvar.decompose([1.0], r, method=method).total
    assert unit > 0.5
    try:
        got = xlmvar.decompose([1e308], r, method=method)
    except ValueError as error:
        assert str(error).startswith("positions: ") and "too large or too small" in str(error)
    else:
        assert got.total == pytest.approx(unit * 1e308, rel=1e-12)
    # a gross exposure past the largest float: a P&L of 1.5e308 x (a_t - b_t) = 1.5e307 in
    # every period, a sure gain, so the VaR is -1.5e307 (or the figure is refused)
    r2 = np.column_stack([np.linspace(0.5, 0.9, 20), np.linspace(0.4, 0.8, 20)])
    try:
        got = xlmvar.decompose([1.5e308, -1.5e308], r2, method=method)
    except ValueError as error:
        assert str(error).startswith("positions: ") and "too large or too small" in str(error)
    else:
        assert got.total == pytest.approx(-1.5e307, rel=1e-9)
    assert not historical.is_flat(np.inf, np.inf) and not historical.is_flat(1.0, np.inf)
    assert historical.is_flat(0.0, 1.0) and not historical.is_flat(np.nan, 1.0)


@pytest.mark.parametrize("scale", [1.0, 1e-300, 1e300, 1e307, 1e308])
@pytest.mark.parametrize("method", ["historical", "cornish-fisher", "pnl"])
@pytest.mark.parametrize("measure", ["var", "es"])
def test_an_exact_hedge_is_flat_at_any_scale(scale, method, measure):
    # P&L 0 in exact arithmetic at every scale; the gross exposure of 1e308 against -1e308 is
    # past the largest float, and its rounding noise (FMA in BLAS: 1e290) once became the VaR
    # with percentages of +-1.6e16 (an adversarial review found it)
    import xlmvar

    column = np.linspace(-0.95, 0.95, 40)
    for x, r in (([scale, -scale], np.column_stack([column] * 2)),
                 ([scale, -0.3 * scale, -0.7 * scale], np.column_stack([column] * 3))):
        if method == "pnl":
            x, r = np.ones(len(x)), r * np.array(x)
        got = xlmvar.decompose(x, r, measure=measure, method=method)
        assert got.total == 0.0
        np.testing.assert_array_equal(got.percent, 0.0)
        # a flat book's figure is -x.mu: its components -x_i mu_i (rounding of mu_i = 0 here)
        mu = (r / scale).mean(axis=0) * scale if method == "pnl" else r.mean(axis=0)  # no overflow
        np.testing.assert_allclose(got.component, -np.asarray(x) * mu, rtol=1e-9, atol=1e-15 * scale)


def test_cornish_fisher_standalone_is_homogeneous_down_to_tiny_books():
    # m2 of a position of 1e-160 underflowed to 0 and the column looked flat: a figure of
    # -x mu only (an adversarial review found it); the figure is x_i times a unit's, and
    # scales with the returns too
    import xlmvar

    r = np.random.default_rng(1).standard_t(8, size=(250, 3)) * 0.01
    x = np.array([1.0, 0.5, -2.0])
    unit = xlmvar.standalone(x, r, method="cornish-fisher", measure="es")
    for c in (1e-160, 1e-300, 1e150):
        np.testing.assert_allclose(xlmvar.standalone(x * c, r, method="cornish-fisher", measure="es"), unit * c, rtol=1e-12)
        if c < 1.0:  # returns of 1e148 are refused as percentages
            np.testing.assert_allclose(xlmvar.standalone(x, r * c, method="cornish-fisher", measure="es"), unit * c, rtol=1e-12)


def test_an_integer_too_large_for_a_float_is_refused_by_name():
    import xlmvar

    returns = [[0.01, 0.02], [0.02, 10**400], [0.0, 0.01], [0.01, 0.02], [0.0, -0.01]]
    with pytest.raises(ValueError, match=r"^returns: row 2, column 2 holds a number too large"):
        xlmvar.decompose([1, 1], returns, method="historical")
    with pytest.raises(ValueError, match=r"^positions: item 3 holds a number too large"):
        as_vector([1, 2, -(10**309)], "positions")


@pytest.mark.parametrize(
    "options, message",
    [({"confidence": 10**400}, r"^confidence: got a number too large"),
     ({"horizon": 10**400}, r"^horizon: got a number too large"),
     ({"method": "montecarlo", "draws": 10**400}, r"^draws: got a number too large"),
     ({"method": "montecarlo", "dof": -(10**400)}, r"^dof: got a number too large")],
)
def test_an_argument_past_the_float_range_is_refused_by_name(options, message):
    # float(10**400) raises OverflowError, which escaped as a crash (an adversarial review)
    import xlmvar

    with pytest.raises(ValueError, match=message):
        xlmvar.decompose(np.ones(2), np.eye(2) * 0.01, **options)


def test_the_first_bad_cell_in_reading_order_is_named_whatever_its_kind():
    for values, where, kind in (([np.nan, 1, 10**400], "item 1", "an error or NaN"),
                                ([1, np.inf, -(10**400)], "item 2", "an infinite value"),
                                ([1, -(10**400), np.nan], "item 2", "a number too large")):
        with pytest.raises(ValueError, match=rf"^positions: {where} holds {kind}"):
            as_vector(values, "positions")
    with pytest.raises(ValueError, match=r"^returns: row 2, column 1 holds an error or NaN"):
        as_matrix([[1, 2], [np.nan, 10**400]], "returns")


def test_a_list_too_deep_to_pickle_is_not_cached_and_refused_by_validation():
    import xlmvar

    deep = 1.0
    for _ in range(3000):
        deep = [deep]
    with pytest.raises(ValueError, match=r"^positions: expected a vector"):
        xlmvar.decompose(deep, [[0.04]], method="montecarlo", draws=1000)


def test_cornish_fisher_standalone_of_an_unheld_fat_tailed_asset_is_zero():
    # each position alone is independent of the others: the call equals the calls without
    # the unheld column, and its own figure is 0 (the expansion of its column, skewness 3
    # and excess kurtosis 124, refused the whole call: an adversarial review found it)
    import xlmvar

    rng = np.random.default_rng(0)
    r = rng.normal(0, 0.01, (250, 5))
    r[:, 3] = rng.normal(0, 0.001, 250)
    r[7, 3], r[100, 3] = 0.3, -0.25
    held = [0, 1, 2, 4]
    for zero in (0.0, -0.0):
        x = np.array([1e6, 2e6, -1e6, zero, 5e5])
        got = xlmvar.standalone(x, r, method="cornish-fisher")
        assert got[3] == 0.0
        np.testing.assert_allclose(got[held], xlmvar.standalone(x[held], r[:, held], method="cornish-fisher"), rtol=1e-12)


@pytest.mark.parametrize("method", ["historical", "cornish-fisher"])
@pytest.mark.parametrize("measure", ["var", "es"])
def test_an_exact_hedge_is_flat_whatever_rows_the_noise_sample_meets(method, measure):
    # a bond marked weekly in a daily history of 250 rows: every 15th row, the rows the noise
    # floor sampled, is a zero return, so the floor was 0 and the P&L's rounding noise was the
    # VaR, with percentages of 1e18 (an adversarial review found it); the book is 0.7 + 0.3 - 1
    # of one bond: no risk
    import xlmvar

    rng = np.random.default_rng(7)
    bond = np.zeros(250)
    bond[4::5] = rng.normal(0, 0.004, 50)
    r = np.c_[rng.normal(0, 0.01, 250), bond, bond, bond]
    got = xlmvar.decompose([0.0, 7e5, 3e5, -1e6], r, measure=measure, method=method)
    assert got.total == 0.0
    np.testing.assert_array_equal(got.percent, 0.0)


@pytest.mark.parametrize("method", ["historical", "cornish-fisher"])
def test_history_decompositions_are_homogeneous_at_any_scale(method):
    # VaR is homogeneous of degree 1 in the book, the marginal of degree 0: Cornish-Fisher's
    # moments of a P&L of 1e-79 underflowed (a total 1.4% low), the kernel's bandwidth
    # overflowed at 1e154 and underflowed at 1e-160 (components 0.5-10% off)
    import xlmvar

    r = np.random.default_rng(3).standard_t(6, (300, 3)) * 0.01
    x = np.array([1.0, -0.5, 2.0])
    unit = xlmvar.decompose(x, r, method=method)
    for c in (10**-79.2, 1e-165, 1e-200, 1e154, 1e200):
        got = xlmvar.decompose(x * c, r, method=method)
        assert got.total == pytest.approx(unit.total * c, rel=1e-12)
        np.testing.assert_allclose(got.marginal, unit.marginal, rtol=1e-12, atol=1e-15 * np.abs(unit.marginal).max())


def test_counts_and_labels_refuse_text_true_blanks_and_overflow_by_name():
    from fractions import Fraction

    from xlmvar.engine import backtest, groups, simulation
    from xlmvar.engine._validation import check_flag

    for value, shown in ((10**400, "a number too large"), (np.array(["5"]), "the text '5'"),
                         (np.array([True]), "TRUE"), (np.array([None]), "a blank cell"), (np.True_, "TRUE")):
        with pytest.raises(ValueError, match=rf"^n: got {shown}"):
            backtest._count(value, "n", 1)
    with pytest.raises(ValueError, match=r"^flag: got a number too large"):
        check_flag(10**400, "flag")
    with pytest.raises(ValueError, match=r"^seed: got a number too large"):
        simulation.check_seed(Fraction(10**400, 3))
    with pytest.raises(ValueError, match=r"^dof: got a number too large"):
        simulation.check_dof(10**400)
    with pytest.raises(ValueError, match=r"^positions: item 1 holds a number too large"):
        as_vector([Fraction(10**400, 3), 1], "positions")
    assert groups.check_labels([10**400, "b"], 2)[0] == str(10**400)  # a label, whatever its size


@pytest.mark.parametrize("method", ["normal", "historical", "cornish-fisher", "montecarlo"])
def test_a_total_below_the_least_normal_float_is_refused_not_shown(method):
    # positions of 1e-320: a VaR of about 1e-322, a subnormal float with a few significant
    # bits (its % of VaR off by percents); Monte Carlo's x'Sx underflowed to 0 and showed a
    # VaR of 0.  The same book at scale 1 is computed.
    import xlmvar

    r = np.random.default_rng(3).standard_t(6, (300, 3)) * 0.01
    model = np.cov(r.T) if method in ("normal", "montecarlo") else r
    options = {"draws": 5000} if method == "montecarlo" else {}
    assert xlmvar.decompose([1.0, 1.0, 1.0], model, method=method, **options).total > 0.01
    with pytest.raises(ValueError, match=r"^positions: .* too large or too small"):
        xlmvar.decompose([1e-320, 1e-320, 1e-320], model, method=method, **options)


@pytest.mark.parametrize("method", ["historical", "cornish-fisher"])
def test_a_hedged_pair_with_a_bad_tick_does_not_hide_a_small_risky_position(method):
    # a hedged pair of 1e9 whose bond has a 5,000% tick on the risky asset's worst day: the
    # noise floor was 1e-12 of that day's gross exposure, 0.1, above the risky range, and the
    # book was called flat (an adversarial review found it); the pair cancels exactly up to
    # FMA rounding of 1e-9, so the VaR is the risky position's alone, to 1e-6
    import xlmvar

    rng = np.random.default_rng(5)
    bond, risky = rng.normal(0, 0.01, 500), rng.normal(0, 0.01, 500)
    bond[np.argmax(risky)] = 50.0
    r = np.column_stack([bond, bond, risky])
    alone = xlmvar.decompose([0.0, 0.0, 1.0], r, confidence=0.99, method=method).total
    got = xlmvar.decompose([1e9, -1e9, 1.0], r, confidence=0.99, method=method).total
    assert alone > 0.01 and got == pytest.approx(alone, rel=1e-6)


def test_an_individual_var_below_the_least_normal_float_is_refused():
    import xlmvar

    r = np.random.default_rng(3).standard_t(6, (250, 3)) * 0.01
    for method, model in (("normal", np.cov(r.T)), ("historical", r)):
        with pytest.raises(ValueError, match=r"^positions: .* too large or too small"):
            xlmvar.standalone([1e-320, -4e-321, 2e-321], model, method=method)
        assert (xlmvar.standalone([1.0, -0.4, 0.2], model, method=method) > 0).all()


@pytest.mark.parametrize("method", ["historical", "cornish-fisher"])
def test_a_hedge_of_one_bond_s_returns_computed_two_ways_is_flat(method):
    # the same weekly-marked bond in pounds and in pence: p1 / p0 - 1 carries an absolute
    # rounding error of about eps, so the columns differ by 2.2e-16 and the hedge's P&L by
    # eps x 1e6 per period; the range-rounding bound alone called that risk, a VaR of 4e-13
    # with % of VaR of 1e14 (an adversarial review found it)
    import xlmvar

    rng = np.random.default_rng(1)
    steps = np.where(np.arange(1, 251) % 5 == 0, 1 + rng.normal(0, 0.004, 250), 1.0)
    price = 101.37 * np.cumprod(np.r_[1.0, steps])
    pounds, pence = price[1:] / price[:-1] - 1, (100 * price)[1:] / (100 * price)[:-1] - 1
    assert 0 < np.abs(pounds - pence).max() < 1e-15
    for r in (np.column_stack([pounds, pence]), np.column_stack([pounds, (price[1:] - price[:-1]) / price[:-1]])):
        got = xlmvar.decompose([1e6, -1e6], r, method=method)
        assert got.total == 0.0
        np.testing.assert_array_equal(got.percent, 0.0)


@pytest.mark.parametrize("method", ["historical", "cornish-fisher"])
@pytest.mark.parametrize("row, tick, pair", [(0, 1000.0, 1e9), (0, 50.0, 2e10), (31, 50.0, 2e10)])
def test_a_bad_tick_in_a_sampled_period_does_not_hide_a_risky_position(method, row, tick, pair):
    # the noise floor's typical exposure was a mean over 16 sampled periods, row 0 among
    # them: one bad tick of a hedged pair there made the whole book flat (a review found it)
    import xlmvar

    rng = np.random.default_rng(5)
    bond, risky = rng.normal(0, 0.01, 500), rng.normal(0, 0.01, 500)
    bond[row] = tick
    r = np.column_stack([bond, bond, risky])
    alone = xlmvar.decompose([0.0, 0.0, 1.0], r, confidence=0.99, method=method).total
    got = xlmvar.decompose([pair, -pair, 1.0], r, confidence=0.99, method=method).total
    assert alone > 0.01 and got == pytest.approx(alone, rel=1e-5)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("method, positions, table", [
    ("pnl", [1.0], np.tile([[9e307], [-9e307]], (10, 1))),
    ("historical", [1e308], np.tile([[0.9], [-0.9]], (10, 1))),
])
def test_an_individual_es_whose_tail_sum_overflows_is_the_tail_mean(method, positions, table):
    # ten tail periods of -9e307 sum past the largest float; their mean is -9e307, as the
    # book's own ES says (the individual ES refused it, with a RuntimeWarning)
    import xlmvar

    alone = xlmvar.standalone(positions, table, method=method, measure="es")
    assert alone[0] == pytest.approx(9e307, rel=1e-15)
    assert xlmvar.decompose(positions, table, method=method, measure="es").total == pytest.approx(9e307, rel=1e-15)


@pytest.mark.filterwarnings("error")
def test_a_covariance_asymmetric_past_the_float_range_is_refused_without_a_warning():
    import xlmvar

    with pytest.raises(ValueError, match=r"^cov: is not symmetric: row 1, column 2 holds 1.7e\+308"):
        xlmvar.decompose([1.0, 1.0], [[1.7e308, 1.7e308], [-1.7e308, 1.0]])


def _worst_pair_by_loop(mat):
    """The first pair (in reading order) with the largest ``|S_ij - S_ji|``, and that value:
    every element visited, as ``argmax(|S - S'|)`` would."""
    n = mat.shape[0]
    worst, where = -1.0, None
    for i in range(n):
        for j in range(n):
            gap = abs(float(mat[i, j]) - float(mat[j, i]))
            if gap > worst:
                worst, where = gap, (i, j)
    return worst, where


@pytest.mark.parametrize("n", [1, 2, 127, 128, 129, 300])
def test_the_symmetry_check_in_strips_names_the_pair_a_whole_comparison_names(n):
    from xlmvar.engine._validation import _check_symmetric

    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, n))
    s = (a + a.T) / 2.0
    _check_symmetric(s, "cov")  # exactly symmetric: passes
    for pairs in ([(n - 1, 0)], [(0, n - 1), (n // 2, n // 3)], [(n - 2, n - 1), (n - 1, n - 3)], [(n // 3, n - 1)]):
        t = s.copy()
        for i, j in pairs:
            if i != j and 0 <= min(i, j):
                t[i, j] += 0.5  # a tie when there are two: the first in reading order is named
        worst, (i, j) = _worst_pair_by_loop(t)
        if worst == 0.0:
            continue  # n = 1: no pair off the diagonal
        with pytest.raises(ValueError, match=rf"^cov: is not symmetric: row {i + 1}, column {j + 1} holds"):
            _check_symmetric(t, "cov")
    u = s.copy()
    if n > 1:  # just inside the tolerance of 1e-8 max|S|, across the strips
        u[n - 1, 0] += 0.9e-8 * np.abs(s).max()
        _check_symmetric(u, "cov")
