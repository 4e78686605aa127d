"""The README is true: its examples run, its arithmetic multiplies out, its commands are CI's.

The worked example is recomputed here from the seed's stated inputs with plain numpy and the
normal distribution's closed forms (not with xlmvar), and every figure the README prints for
it is compared with that at the README's own rounding.
"""

from __future__ import annotations

import doctest
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.special import ndtri

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

# The seed's inputs (README, "The worked example"), typed from the text, not from the engine.
X = np.array([5e6, 3e6, 2e6])
VOLS = np.array([0.15, 0.10, 0.60])
CORR = np.array([[1.0, -0.3, 0.2], [-0.3, 1.0, 0.1], [0.2, 0.1, 1.0]])
Z = ndtri(0.95)


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _money(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


def _hand():
    """Everything the worked example states, by the closed forms with numpy."""
    cov = np.outer(VOLS, VOLS) * CORR
    w = X / X.sum()
    sigma = math.sqrt(w @ cov @ w)
    marginal = Z * (cov @ w) / sigma
    individual = Z * X * VOLS
    es = math.exp(-Z * Z / 2) / math.sqrt(2 * math.pi) / 0.05 * sigma * X.sum()
    return {
        "wsw": w @ cov @ w,
        "sigma": sigma,
        "var": Z * sigma * X.sum(),
        "sw": cov @ w,
        "marginal": marginal,
        "component": X * marginal,
        "pct": X * marginal / (Z * sigma * X.sum()),
        "undiversified": individual.sum(),
        "es": es,
    }


HAND = _hand()
EXAMPLE = _section("The worked example: SPY / TLT / BTC")


def test_the_hand_calculation_multiplies_out():
    block = EXAMPLE[EXAMPLE.index("```\nw'Sw") + 4 : EXAMPLE.index("```", EXAMPLE.index("```\nw'Sw") + 4)]
    lines = block.strip().splitlines()
    # line 1: the terms as products, e.g. 2(.5)(.3)(-.3)(.15)(.10)
    terms = re.findall(r"([-\d.]+)((?:\([-\d.]+\))+)", lines[0].split("=", 1)[1])
    products = [float(a) * math.prod(float(f) for f in re.findall(r"\(([-\d.]+)\)", fs)) for a, fs in terms]
    # line 2: the same terms evaluated, and their sum
    sums = lines[1].split("sigma_p")[0].split("=", 1)[1]
    stated = [float(t.replace(" ", "")) for t in re.findall(r"[-+]?\s*\.\d+", sums)]
    *stated_terms, stated_sum = stated
    np.testing.assert_allclose(products, stated_terms, rtol=0, atol=5e-7)
    assert sum(products) == pytest.approx(stated_sum, abs=5e-7) == pytest.approx(HAND["wsw"], abs=5e-7)
    sigma_pct = float(re.search(r"sigma_p = ([\d.]+)%", lines[1]).group(1))
    assert sigma_pct / 100 == pytest.approx(HAND["sigma"], abs=1e-8)
    # line 3: VaR = z x sigma_p x $10m = a x b x $10m = $c : the shown factors give the shown total
    a, b, total = re.search(r"= ([\d.]+) x ([\d.]+) x \$10m = (\$[\d,]+)", lines[2]).groups()
    assert round(float(a) * float(b) * 1e7) == _money(total) == round(HAND["var"])
    assert float(a) == pytest.approx(Z, abs=5e-8) and float(b) == pytest.approx(HAND["sigma"], abs=5e-9)
    sw = [float(v) for v in re.search(r"Sw\s+= \(([^)]*)\)", lines[3]).group(1).split(",")]
    np.testing.assert_allclose(sw, HAND["sw"], rtol=0, atol=5e-7)


def _row(label: str) -> list[str]:
    line = next(l for l in EXAMPLE.splitlines() if l.startswith(f"| {label}"))
    return [c.strip() for c in line.strip("|").split("|")][2].split(" / ")


def test_the_table_of_computed_figures():
    assert float(_row("portfolio volatility")[0].rstrip("%")) == round(100 * HAND["sigma"], 2)
    assert _money(_row("portfolio VaR")[0]) == round(HAND["var"])
    np.testing.assert_allclose([float(v) for v in _row("marginal VaR")], HAND["marginal"], atol=5e-5, rtol=0)
    assert [_money(v) for v in _row("component VaR")] == [round(v) for v in HAND["component"]]
    assert [float(v.rstrip("%")) for v in _row("% of VaR")] == [round(100 * p, 1) for p in HAND["pct"]]


def test_the_prose_figures():
    figures = {
        "undiversified VaR is": HAND["undiversified"],
        "diversification saves": HAND["undiversified"] - HAND["var"],
        "the 95% ES is": HAND["es"],
        "= $": HAND["var"] / math.sqrt(252),  # the one-day figure, $2,542,616 / sqrt(252)
    }
    prose = " ".join(EXAMPLE.split())
    for words, value in figures.items():
        stated = re.search(re.escape(words) + r"\s*\$?([\d,]+)", prose.split("sqrt(252)")[-1] if words == "= $" else prose)
        assert stated, words
        assert _money(stated.group(1)) == round(value), words


def test_python_examples_run_as_shown():
    """Every ```python block of the README runs: a session (>>>) as a doctest, a file as code."""
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert any(">>>" in block for block in blocks), "the README shows Python usage"
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for i, block in enumerate(blocks):
        if ">>>" in block:
            runner.run(parser.get_doctest(block, {}, f"README block {i + 1}", "README.md", 0))
        else:  # a file the README asks the user to write, e.g. xlwings Lite's main.py
            exec(compile(textwrap.dedent(block), f"README block {i + 1}", "exec"), {})
    assert runner.summarize(verbose=False).failed == 0


def test_the_readme_test_command_is_what_ci_runs():
    two = _section("Two commands")
    commands = re.findall(r"```bash\n(.*?)\n```", two, flags=re.S)
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1].strip() in ci
