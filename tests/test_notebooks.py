"""Every notebook in nbs/ run as a test (nbdev's runner), one pytest case each so CI logs a count.
Cells flagged `#| slow` run as well (CI has the time); `#| gpu` cells run only where CUDA is (nbdev-test --flags gpu).

Stage notebooks (front matter `skip_exec: true`) are parameterised papermill notebooks: they are run by
tests/test_speedrun.py through papermill instead, and are skipped here with that reason."""
import json
from pathlib import Path
import pytest
from nbdev.test import test_nb as run_notebook  # renamed so pytest does not collect it

NBS_DIR = Path(__file__).resolve().parents[1] / "nbs"
NOTEBOOKS = sorted(p for p in NBS_DIR.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)

def _skip_exec(nb_path):
    cells = json.loads(nb_path.read_text())["cells"]
    return bool(cells) and cells[0]["cell_type"] == "raw" and "skip_exec: true" in "".join(cells[0]["source"])

@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: str(p.relative_to(NBS_DIR)))
def test_notebook(nb):
    if _skip_exec(nb): pytest.skip("papermill stage notebook: executed by tests/test_speedrun.py")
    ok, secs = run_notebook(nb, skip_flags=["notest", "gpu"])   # slow cells run too: CI has the time
    assert ok, f"{nb.name} failed (see the traceback above)"
