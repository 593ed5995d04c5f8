"""optbench report: one self-contained HTML page, deterministic, under 1 MB, checked in a real headless Chromium
(Debian's chromium driven by playwright: no browser download) for requests, console errors, toggles and sorting."""

import re
import shutil
from pathlib import Path

import pytest

from conftest import CONFIGS, run_cli
from optbench.errors import OptbenchError
from optbench.share.html import report_command, sort_value

EPOCHS = 850  # more epochs than both size bounds (band envelopes, pointer data) let through
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    rc, _, err = run_cli("train", CONFIGS / "moons-optimizers.yaml", "--set", f"train.epochs={EPOCHS}", "-q",
                         "--runs-dir", root / "ref")
    assert rc == 0, err
    rc, _, err = run_cli("sweep", CONFIGS / "moons-sweep.yaml", "--set", "train.epochs=30", "--set", "seeds=[0,1,2]", "--jobs", "1", "-q",
                         "--runs-dir", root / "sweep")
    assert rc == 0, err
    rc, out, err = run_cli("report", root / "ref", "-o", root / "ref.html")
    assert rc == 0, err
    assert out.strip() == str(root / "ref.html")
    report_command([str(next((root / "sweep").iterdir()))], out=root / "sweep.html", warn=lambda m: None)
    return root


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (apt-get install chromium; .ci/run installs it)"
    with sync_playwright() as p:
        yield p


def _open(browser, path: Path, profile: Path):
    """A fresh Chromium profile, the page loaded from file://; every request and console message recorded."""
    ctx = browser.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, args=ARGS, headless=True,
                                                     viewport={"width": 1200, "height": 900})
    ctx.set_default_timeout(60_000)
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    seen = {"requests": [], "errors": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return ctx, page, seen


def _column(table, col: int) -> list[str]:
    return table.locator("tbody tr").evaluate_all(f"rows => rows.map(r => r.cells[{col}].textContent)")


def test_reference_report_in_chromium(study, browser, tmp_path):
    ctx, page, seen = _open(browser, study / "ref.html", tmp_path / "profile")
    try:
        # toggling a label hides every line and band of it, in every figure, and only its own
        adam = page.locator('#fig-curves svg [data-label="0"]')
        others = page.locator('#fig-curves svg [data-label="1"]')
        assert adam.count() >= 2 and others.count() >= 2  # the mean line and its seed band at least
        assert adam.first.is_visible() and others.first.is_visible()
        page.get_by_role("checkbox", name="adam").uncheck()
        assert all(not adam.nth(i).is_visible() for i in range(adam.count()))
        assert not page.locator('#fig-accuracy svg [data-label="0"]').first.is_visible()
        assert others.first.is_visible()
        # the values under the pointer: the shown labels only
        svg = page.locator("#fig-curves svg")
        box = svg.bounding_box()
        svg.hover(position={"x": box["width"] * 0.5, "y": box["height"] * 0.5}, force=True)
        readout = page.locator("#fig-curves .readout").text_content()
        assert re.match(r"epoch \d+: ", readout) and "gd " in readout and "momentum " in readout
        assert "adam" not in readout
        page.get_by_role("checkbox", name="adam").check()
        assert adam.first.is_visible()
        svg.hover(position={"x": box["width"] * 0.5 + 3, "y": box["height"] * 0.5}, force=True)
        assert "adam " in page.locator("#fig-curves .readout").text_content()
        page.screenshot(path=str(study / "ref.png"), full_page=True)
        # sorting a column reorders the rows: ascending, then descending by the cells' numbers
        table = page.locator("table.sortable").first
        labels = _column(table, 0)
        header = table.get_by_role("button", name="final train cost")
        col = table.locator("thead th").all_text_contents().index("final train cost")
        header.click()
        up = _column(table, 0)
        values = [float(x.split(" ")[0]) for x in _column(table, col)]
        assert values == sorted(values) and sorted(up) == sorted(labels)
        header.click()
        down = _column(table, 0)
        assert down == up[::-1] and down != labels
        assert table.locator("thead th").nth(col).get_attribute("aria-sort") == "descending"
    finally:
        ctx.close()
    assert [u for u in seen["requests"] if not u.startswith("file://")] == []
    assert seen["errors"] == []


def test_sweep_report_in_chromium(study, browser, tmp_path):
    ctx, page, seen = _open(browser, study / "sweep.html", tmp_path / "profile")
    try:
        assert page.locator("#sweeps").is_visible()
        captions = page.locator("caption").all_text_contents()
        assert any("budget 8 trials per variant" in c for c in captions)
        for kind in ("curves", "accuracy", "lr", "heatmap", "boundary"):
            assert page.locator(f"#fig-{kind} svg").is_visible(), kind
        n = page.locator("input[data-label]").count()
        assert n == 6  # per optimizer its default and its tuned trial
        page.locator("input[data-label]").nth(n - 1).uncheck()
        assert not page.locator(f'#fig-curves svg [data-label="{n - 1}"]').first.is_visible()
    finally:
        ctx.close()
    assert [u for u in seen["requests"] if not u.startswith("file://")] == []
    assert seen["errors"] == []


def test_report_is_self_contained_deterministic_and_small(study, tmp_path):
    text = (study / "ref.html").read_text()
    assert (study / "ref.html").stat().st_size < 1_000_000 and (study / "sweep.html").stat().st_size < 1_000_000
    for pattern in (r"https?://(?!www\.w3\.org/)", r"<link\b", r"\bsrc="):  # the only URLs: SVG's namespace names
        assert not re.search(pattern, text), pattern
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert text.count("<svg") >= 3  # curves, accuracy, decision boundaries inline
    assert "ranked on final train cost" in text and "paired, 5 seeds" in text
    assert "optbench train " in text and "config.yaml" in text and "BLAS" in text
    for key in ("optimizer.name", "optimizer.mu", "optimizer.form"):
        assert f">{key}<" in text, key
    # the same runs give the same bytes: in this process as in the CLI's
    again = report_command([str(study / "ref")], out=study / "ref.html", warn=lambda m: None)
    assert again.read_text() == text
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))  # several SVGs on one page: no id twice


def test_report_errors_are_one_line(study, tmp_path):
    rc, _, err = run_cli("report", study / "ref", "-o", tmp_path / "study.pdf")
    assert rc == 2 and err.strip().splitlines() == [
        f"error: --out: '{tmp_path / 'study.pdf'}' is not an .html file (accepted: a path ending in .html)"]
    with pytest.raises(OptbenchError, match="no readable runs"):
        report_command([str(tmp_path / "missing")], out=tmp_path / "x.html", warn=lambda m: None)
    assert not (tmp_path / "x.html").exists()


def test_sort_values():
    assert sort_value("0.3546 ± 0.063") == "0.3546"
    assert sort_value("98.7% (ep 3661)") == repr(0.987)
    assert sort_value("5 ok") == "5.0" and sort_value("+0.307") == "0.307" and sort_value("inf") == "1e308"
    assert sort_value("moons-optimizers/adam") is None and sort_value("-") is None
