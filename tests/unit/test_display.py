"""Issue 37, item 3: each display value has one rule (slurm/display.py) and the pages render the
server's text; tests/data/display_texts.json is the table a script that must word a value itself
(the lab extension's countdown) is held to as well."""

import json
import re
from pathlib import Path

import pytest

from aifactory_workbench.slurm.display import duration_text, hours_data, hours_text

ROOT = Path(__file__).parents[2]
TABLE = json.loads((ROOT / "tests" / "data" / "display_texts.json").read_text())
#: The hub's pages' scripts, the spawn form's and the lab extension's: none may round or word a
#: duration again (the lab extension shows lab/session.py's texts).
SCRIPTS = (
    sorted((ROOT / "hub" / "js").glob("*.js"))
    + sorted((ROOT / "spawners" / "js").glob("*.js"))
    + sorted((ROOT / "labextension" / "src").glob("*.ts"))
)


@pytest.mark.parametrize(("seconds", "text"), TABLE["duration_text"])
def test_a_duration_in_words(seconds, text):
    assert duration_text(seconds) == text


@pytest.mark.parametrize(("hours", "text"), TABLE["hours_text"])
def test_hours_to_the_hundredth(hours, text):
    assert hours_text(hours) == text


def test_a_pages_json_carries_the_numbers_for_its_bars_and_the_texts_it_shows():
    assert hours_data(2 / 3, 0.004) == {
        "core_hours": 0.67,
        "gpu_hours": 0.0,
        "core_hours_text": "0.67",
        "gpu_hours_text": "0.00",
    }


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_script_rounds_or_words_a_duration_of_its_own(path):
    """What issue 37 found written again in JavaScript and TypeScript: hours rounded (toFixed), durations worded
    ("under a minute", " h "), walltimes and sizes parsed (seconds to hours, HH:MM:SS, 8G)."""
    text = path.read_text()
    rules = (r"\.toFixed\(", r"under a minute", r"' h '|` h |\bh \$\{", r"/ ?3600\b", r"\(\\d\+\):", r"\[KMGT\]")
    for rule in rules:
        assert not re.search(rule, text), f"{path.name} holds {rule!r}"
