"""`bash bench/gpu_check.sh OUT --dry-run`: the one-command GPU check on the CPU with tiny shapes, every part, so the
script does not rot between GPU runs. Checks the files, the JSON every part wrote, and the one-page summary."""
import json, os, subprocess, sys, time
from pathlib import Path
import pytest
from modern_llm.data import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 180                     # the dry run on 2 CPU cores of its own (issue 22): ~45 s of CPU time in all
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    if shared_data_dir() is None: pytest.skip("no data mirror: set MODERN_LLM_DATA (CI uses ../shared/data); part 5 needs it")
    out = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "PYTHON": sys.executable, "MODERN_LLM_DATA": str(shared_data_dir()), "OMP_NUM_THREADS": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    t0 = time.time()
    r = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), str(out), "--dry-run"], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=4 * BUDGET_S)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, json.loads((out / "gpu_check.json").read_text()), time.time() - t0


def test_files_and_every_part(dry_run):
    out, doc, wall = dry_run
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and {"gpu_check.json", "summary.md", "log.txt"} <= set(files), files
    assert doc["dry_run"] is True
    assert list(doc["parts"]) == ["env", "tests", "train", "generate", "speedrun"]        # the priority order
    bad = {k: v["status"] for k, v in doc["parts"].items() if v["status"] != "ok"}
    assert not bad, (bad, (out / "log.txt").read_text()[-3000:])
    assert all(v["wall_s"] <= v["cap_s"] + 15 for v in doc["parts"].values())
    print(f"dry run: {wall:.0f} s wall; parts {[(k, v['wall_s']) for k, v in doc['parts'].items()]}")
    assert wall < 2 * BUDGET_S, wall        # a 2-core machine shared with other jobs: slack over the design budget


def test_part_results(dry_run):
    _, doc, _ = dry_run
    p = {k: v["result"] for k, v in doc["parts"].items()}
    assert p["env"]["torch"] and "train, sink" in p["env"]["attention"]
    # the unpacked training forward passes no mask, so even on the CPU SDPA picks its fused (flash) kernel, sink on or off
    assert p["env"]["attention"]["train, sink"]["backend"] == "flash", p["env"]["attention"]
    assert p["env"]["attention"]["train, no sink"]["backend"] == "flash"
    assert p["tests"]["pytest"]["tests"] > 0 and p["tests"]["pytest"]["failures"] == 0
    assert set(p["train"]) == {"train_tiny_b4_sink", "train_tiny_b4_nosink"}
    assert all(r["rc"] == 0 and r["tokens_per_s"] > 0 and r["peak_memory_gb"] > 0 for r in p["train"].values())
    assert p["generate"]["rc"] == 0 and p["generate"]["result"]["results"]["modern_llm_engine"]["new_tokens_per_s"] > 0
    stages = p["speedrun"]["stages"]
    assert list(stages) == ["pretrain", "sft", "dpo", "verifier", "evaluate"]
    assert stages["pretrain"]["auto_batch"]["micro_batch_size"] == stages["pretrain"]["summary"]["micro_batch_size"]
    assert "error" not in p["speedrun"]["report"], p["speedrun"]["report"]


def test_summary_page(dry_run):
    out, doc, _ = dry_run
    md = (out / "summary.md").read_text()
    assert md.startswith("# GPU check (DRY RUN")
    for what in ("124M shape, 32x1024, sink on | 620,000", "354M shape, 16x1024, sink on | 235,000", "190,000",
                 "| speedrun | ok |", "train_tiny_b4_nosink"):
        assert what in md, what
    assert all(r["pass"] is None for r in doc["verdicts"])     # a dry run passes or fails no target
    assert len(md.splitlines()) < 60                          # one page
