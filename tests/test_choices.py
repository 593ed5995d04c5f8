"""Every option with a fixed set of values: its help names exactly the values the implementing code accepts, and a
bad value is one `error:` line naming the option, the value and what is accepted, exit 2, before anything loads."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer

from conftest import ROOT
from optbench import choices, cli
from optbench.compare import FORMATS as COMPARE_FORMATS
from optbench.compare.read import SORT_METRICS
from optbench.compare.render import RENDERERS
from optbench.metrics import METRICS
from optbench.plot import BANDS, FORMATS as FIGURE_FORMATS, KINDS, XS
from optbench.plots.figures import FIGURES
from optbench.report.listing import FAMILIES
from optbench.share.export import FORMATS as EXPORT_FORMATS, WRITERS
from optbench.share.table import PER

COMMAND = typer.main.get_command(cli.app)


def help_of(command: str, name: str) -> str:
    """The help string of `command`'s option `name` (a flag such as --kind, or an argument's name)."""
    (param,) = [p for p in COMMAND.commands[command].params if name in p.opts]
    return param.help


def named(text: str) -> list[str]:
    """`a, b or c` -> [a, b, c] (a value's `(note)` dropped)."""
    return re.split(r", | or | and ", re.sub(r" \([^()]*\)", "", text))


# (command, option, the part of its help that lists the values, the values the implementing code accepts)
OPTIONS = [
    ("plot", "--kind", r"^(.*?) \(", tuple(FIGURES)),
    ("plot", "--x", r": (.*)\.$", XS),
    ("plot", "--band", r": (.*)\.$", BANDS),
    ("compare", "--format", r"^(.*)\.$", tuple(RENDERERS)),
    ("export", "--format", r"^(.*)\.$", (*WRITERS, "tensorboard")),
    ("export", "--per", r"^(.*)\.$", PER),
    ("check", "--format", r"^(.*)\.$", choices.TEXT_FORMATS),
    ("lr-find", "--format", r"^(.*)\.$", choices.TEXT_FORMATS),
    ("list", "family", r"^(.*?) \(default", tuple(FAMILIES)),
]
# what each command needs besides the bad value to parse
ARGS = {"plot": [], "compare": [], "export": ["-o", "{tmp}/x.csv"], "check": ["{tmp}/c.yaml"],
        "lr-find": ["{tmp}/c.yaml"], "list": []}


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """`optbench ARGS` through the console entry point, in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["optbench", *map(str, args)])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


@pytest.mark.parametrize("command, option, listed, accepted", OPTIONS, ids=[f"{c} {o}" for c, o, _, _ in OPTIONS])
def test_the_help_names_exactly_the_accepted_values(command, option, listed, accepted):
    text = help_of(command, option)
    if option == "--per":  # `epoch: what a row is; run: ...`
        values = re.findall(r"(?:^|; )(\w+): ", text)
    else:
        values = named(re.search(listed, text).group(1))
    assert values == list(accepted), text


@pytest.mark.parametrize("command, option, listed, accepted", OPTIONS, ids=[f"{c} {o}" for c, o, _, _ in OPTIONS])
def test_a_bad_value_is_one_line_naming_what_is_accepted(command, option, listed, accepted, monkeypatch, capsys, tmp_path):
    shown = "FAMILY" if option == "family" else option
    bad = [] if option == "family" else [option]
    rest = [a.format(tmp=tmp_path) for a in ARGS[command]]
    code, out, err = run_main(monkeypatch, capsys, command, *rest, *bad, "bogus")
    assert (code, out) == (2, "")
    assert err == f"error: {shown}: 'bogus' is invalid (accepted: {', '.join(accepted)})\n"
    assert list(tmp_path.iterdir()) == []  # refused while parsing: nothing read, nothing written


def test_sort_names_every_metric_and_its_own_keys(monkeypatch, capsys):
    metrics = named(re.search(r"^Rank and pair on (.*?) \(default", help_of("compare", "--metric")).group(1))
    assert metrics == list(METRICS)
    extra = named(re.search(r"^Row order: any --metric, (.*?) \(", help_of("compare", "--sort")).group(1))
    assert [*metrics, *extra] == list(SORT_METRICS)
    code, _, err = run_main(monkeypatch, capsys, "compare", "--sort", "speed")
    assert code == 2 and err == f"error: --sort: 'speed' is invalid (accepted: {', '.join(SORT_METRICS)})\n"
    # --metric is checked by compare itself (with a hint for best_test_*), from the same METRICS, before any run is read
    code, _, err = run_main(monkeypatch, capsys, "compare", "--metric", "speed")
    assert code == 2 and err == f"error: --metric: 'speed' is not a per-run metric (accepted: {', '.join(METRICS)})\n"


def test_figure_files_and_export_extras():
    for command in ("plot", "lr-find"):
        files = re.search(r"(\.png.*?\.pdf)", help_of(command, "--out")).group(1)
        assert named(files) == ["." + f for f in FIGURE_FORMATS]
    assert re.search(r"\.gif for --kind (\w+)", help_of("plot", "--out")).group(1) == "film"
    text = help_of("export", "--format")
    assert re.findall(r"(\w+) \(pip install 'optbench\[(\w+)\]'\)", text) == [("parquet", "parquet"), ("tensorboard", "tensorboard")]
    needs = re.search(r"\((.*)\)", help_of("plot", "--kind")).group(1)
    assert needs == "landscape, film and layers need train.snapshots_every; sharpness needs train.sharpness_every"


def test_one_definition_read_by_both_sides():
    """The implementing modules use the tuples of optbench.choices themselves, not copies."""
    assert KINDS is choices.PLOT_KINDS and XS is choices.PLOT_XS and BANDS is choices.PLOT_BANDS
    assert FIGURE_FORMATS is choices.FIGURE_FORMATS and COMPARE_FORMATS is choices.COMPARE_FORMATS
    assert SORT_METRICS is choices.SORT_METRICS and EXPORT_FORMATS is choices.EXPORT_FORMATS
    assert PER is choices.EXPORT_PER and FAMILIES is choices.FAMILIES
    assert set(choices.KIND_NEEDS) <= set(KINDS) and set(choices.EXPORT_EXTRAS) <= set(EXPORT_FORMATS)


def test_a_bad_choice_is_refused_before_numpy_loads(tmp_path):
    code = ("import sys; from optbench.cli import main; sys.argv = ['optbench', 'plot', '--kind', 'pie']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print(e.code, 'numpy' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.stdout.split() == ["2", "False"] and p.stderr.startswith("error: --kind: 'pie' is invalid (accepted: curves, ")
