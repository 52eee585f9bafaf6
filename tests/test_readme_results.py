"""The README's result blocks are rendered from run records committed under paper/results/ (never typed by hand):
each `<!-- results:NAME -->` block must equal what `python -m modern_llm.readme_results update paper/results/NAME` writes."""
import re
from pathlib import Path
import pytest
from modern_llm.readme_results import update_readme

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"<!-- results:([A-Za-z0-9_.-]+) -->", (ROOT / "README.md").read_text())

def test_readme_has_a_results_block():
    assert BLOCKS, "README.md has no <!-- results:NAME --> block"

@pytest.mark.parametrize("name", BLOCKS)
def test_readme_block_matches_its_committed_record(name):
    record = ROOT / "paper" / "results" / name
    assert (record / "results").is_dir(), f"{record} is missing: the README block '{name}' has no committed record"
    assert not update_readme(record, name, check=True), \
        f"README block '{name}' is stale: run python -m modern_llm.readme_results update paper/results/{name}"
