"""Tests for the batch layer (``xlmvar batch``): in-process and on Dask, against references.

References: the position-level engine decomposition on the expanded (scenarios x positions)
returns table, grouped by a literal loop; the delta-normal closed form on exposures
aggregated by a Python loop; numpy's quantile of each group's P&L.  The Dask path (a
LocalCluster of 2 threaded workers) must equal the in-process one to 1e-10.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import openpyxl
import pandas as pd
import pytest
from scipy.stats import norm

from xlmvar.batch import cli, run
from xlmvar.engine import groups

T, N_ASSETS, N_POS = 250, 30, 2000
NUMBERS = ["positions", "var", "es", "component_var", "var_share", "component_es", "diversification"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(2026)
    assets = [f"ASSET{i:02d}" for i in range(N_ASSETS)]
    loadings = rng.normal(size=(N_ASSETS, 3)) * 0.006
    returns = rng.standard_t(5, size=(T, 3)) @ loadings.T + rng.normal(0, 0.004, size=(T, N_ASSETS))
    scenarios = pd.DataFrame(returns, columns=assets)
    scenarios.insert(0, "date", pd.date_range("2020-01-01", periods=T).strftime("%Y-%m-%d"))
    positions = pd.DataFrame({
        "id": [f"P{i:05d}" for i in range(N_POS)],
        "desk": rng.choice(["Rates", "Credit", "Equity", "FX"], N_POS),
        "book": rng.choice(["Flow", "Exotics"], N_POS),
        "asset": rng.choice(assets, N_POS),
        "amount": np.round(rng.normal(0, 1e6, N_POS), 2),
    })
    paths = {
        "positions.parquet": positions, "positions.csv": positions,
        "scenarios.parquet": scenarios, "scenarios.csv": scenarios,
    }
    for name, frame in paths.items():
        path = folder / name
        frame.to_parquet(path, row_group_size=700) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    return folder, positions, scenarios


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def _numbers(table):
    return table[NUMBERS].to_numpy(dtype=float)


@pytest.mark.parametrize("method", ["historical", "normal", "cornish-fisher"])
def test_dask_equals_in_process(files, scheduler, method):
    folder, _, _ = files
    here = run(folder / "positions.parquet", folder / "scenarios.parquet", "desk", method=method, chunk_rows=1000)
    there = run(folder / "positions.parquet", folder / "scenarios.parquet", "desk", method=method, scheduler=scheduler)
    assert list(here["desk"]) == list(there["desk"]) == ["Credit", "Equity", "FX", "Rates", "Total"]
    np.testing.assert_allclose(_numbers(there), _numbers(here), rtol=1e-10, atol=0)


def test_csv_in_process_equals_parquet_on_a_local_cluster(files):
    folder, _, _ = files
    here = run(folder / "positions.csv", folder / "scenarios.csv", ["desk", "book"], 0.99, 10, chunk_rows=777)
    there = run(folder / "positions.parquet", folder / "scenarios.parquet", ["desk", "book"], 0.99, 10,
                local_cluster=2, processes=False)
    assert here[["desk", "book"]].equals(there[["desk", "book"]])
    np.testing.assert_allclose(_numbers(there), _numbers(here), rtol=1e-10, atol=0)


def test_historical_is_the_position_level_decomposition_grouped(files):
    folder, positions, scenarios = files
    table = run(folder / "positions.parquet", folder / "scenarios.parquet", "desk")
    returns = scenarios.drop(columns="date")
    per_position = returns[positions["asset"]].to_numpy()  # T x positions: one column each
    amounts = positions["amount"].to_numpy()
    for measure, standalone, component in (("var", "var", "component_var"), ("es", "es", "component_es")):
        ref = groups.group_risk(amounts, per_position, list(positions["desk"]), measure, method="historical")
        order = np.argsort(ref.labels)
        assert list(table[standalone][:-1]) == pytest.approx(ref.standalone[order], rel=1e-9)
        assert list(table[component][:-1]) == pytest.approx(ref.component[order], rel=1e-9)
        assert table[standalone].iloc[-1] == pytest.approx(ref.total, rel=1e-9)
    # the standalone VaR of a desk is the 5% quantile of its P&L, summed position by position
    pnl = defaultdict(lambda: np.zeros(T))
    for desk, asset, amount in zip(positions["desk"], positions["asset"], positions["amount"]):
        pnl[desk] += amount * returns[asset].to_numpy()
    for _, row in table.iloc[:-1].iterrows():
        assert row["var"] == pytest.approx(-np.quantile(pnl[row["desk"]], 0.05), rel=1e-9)
        assert row["positions"] == int((positions["desk"] == row["desk"]).sum())


def test_normal_is_the_closed_form_on_aggregated_exposures(files):
    folder, positions, scenarios = files
    table = run(folder / "positions.csv", folder / "scenarios.parquet", "book", 0.99, method="normal")
    returns = scenarios.drop(columns="date")
    cov = np.cov(returns.to_numpy(), rowvar=False)
    index = {a: i for i, a in enumerate(returns.columns)}
    exposure = defaultdict(lambda: np.zeros(N_ASSETS))
    for book, asset, amount in zip(positions["book"], positions["asset"], positions["amount"]):
        exposure[book][index[asset]] += amount
    x = sum(exposure.values())
    z, sigma = norm.ppf(0.99), math.sqrt(x @ cov @ x)
    for _, row in table.iloc[:-1].iterrows():
        xg = exposure[row["book"]]
        assert row["var"] == pytest.approx(z * math.sqrt(xg @ cov @ xg), rel=1e-9)
        assert row["component_var"] == pytest.approx(z * xg @ cov @ x / sigma, rel=1e-9)
        assert row["es"] == pytest.approx(norm.pdf(z) / 0.01 * math.sqrt(xg @ cov @ xg), rel=1e-9)
    assert table["var"].iloc[-1] == pytest.approx(z * sigma, rel=1e-9)
    assert table["component_var"].iloc[:-1].sum() == pytest.approx(z * sigma, rel=1e-12)


def _broken(folder, name, edit):
    frame = pd.read_csv(folder / "positions.csv", dtype=str, keep_default_na=False)
    edit(frame)
    path = folder / name
    frame.to_csv(path, index=False) if name.endswith(".csv") else frame.assign(
        amount=pd.to_numeric(frame["amount"], errors="coerce")).to_parquet(path, row_group_size=500)
    return path


@pytest.mark.parametrize(
    "name, edit, message",
    [
        ("text.csv", lambda f: f.__setitem__("amount", f["amount"].where(f.index != 1234, "12O0")),
         r"text.csv: row 1235 \(line 1236\), id 'P01234', column 'amount': holds the text '12O0'; expected a finite number"),
        ("blank.csv", lambda f: f.__setitem__("amount", f["amount"].where(f.index != 1801, "")),
         r"blank.csv: row 1802 \(line 1803\), id 'P01801', column 'amount': holds a blank"),
        ("nan.parquet", lambda f: f.__setitem__("amount", f["amount"].where(f.index != 1600, "x")),
         r"nan.parquet: row 1601, id 'P01600', column 'amount': holds "),
        ("asset.csv", lambda f: f.__setitem__("asset", f["asset"].where(f.index != 1999, "ZZZ")),
         r"asset.csv: row 2000 \(line 2001\), id 'P01999', column 'asset': 'ZZZ' is not a column of the scenario table"),
        ("desk.csv", lambda f: f.__setitem__("desk", f["desk"].where(f.index != 7, "")),
         r"desk.csv: row 8 \(line 9\), id 'P00007', column 'desk': is blank"),
        ("nodesk.parquet", lambda f: f.pop("desk"),
         r"nodesk.parquet: has no column 'desk' \(a grouping column, --by\); its columns are id, book, asset, amount"),
    ],
)
def test_bad_positions_name_file_row_and_column(files, scheduler, name, edit, message):
    folder, _, _ = files
    path = _broken(folder, name, edit)
    with pytest.raises(ValueError, match=message):
        run(path, folder / "scenarios.parquet", "desk", chunk_rows=500)
    with pytest.raises(ValueError, match=message):
        run(path, folder / "scenarios.parquet", "desk", scheduler=scheduler)


def test_bad_scenarios_and_arguments(files):
    folder, _, scenarios = files
    bad = scenarios.astype({"ASSET07": object})
    bad.loc[41, "ASSET07"] = "n/a"
    bad.to_csv(folder / "bad_scenarios.csv", index=False)
    with pytest.raises(ValueError, match=r"bad_scenarios.csv: row 42 \(line 43\), column 'ASSET07': holds the text 'n/a'"):
        run(folder / "positions.csv", folder / "bad_scenarios.csv", "desk")
    with pytest.raises(ValueError, match="method: got 'montecarlo'; the batch job offers historical, normal, cornish-fisher"):
        run(folder / "positions.csv", folder / "scenarios.csv", "desk", method="montecarlo")
    with pytest.raises(ValueError, match="confidence: got 95, which looks like a percentage"):
        run(folder / "positions.csv", folder / "scenarios.csv", "desk", 95)
    with pytest.raises(ValueError, match="missing.csv: no such file"):
        run(folder / "missing.csv", folder / "scenarios.csv", "desk")


def test_command_prints_and_writes_every_format(files, capsys):
    folder, _, _ = files
    expected = run(folder / "positions.parquet", folder / "scenarios.parquet", ["desk", "book"], 0.99)
    for suffix in ("parquet", "csv", "xlsx"):
        out = folder / f"risk.{suffix}"
        code = cli.main([str(folder / "positions.parquet"), str(folder / "scenarios.parquet"), "--by", "desk,book",
                         "--confidence", "99%", "-o", str(out)])
        assert code == 0
        if suffix == "parquet":
            written = pd.read_parquet(out)
        elif suffix == "csv":
            written = pd.read_csv(out, keep_default_na=False)
        else:
            rows = list(openpyxl.load_workbook(out, read_only=True).active.values)
            written = pd.DataFrame(rows[1:], columns=rows[0])
        np.testing.assert_allclose(_numbers(written), _numbers(expected), rtol=1e-15)
    printed = capsys.readouterr()
    assert "Component VaR" in printed.out and "Total" in printed.out
    assert "[##############################] 3/3 done" in printed.err
    assert cli.main([str(folder / "positions.csv"), str(folder / "scenarios.csv"), "--by", "nope"]) == 2
    assert "has no column 'nope'" in capsys.readouterr().err
