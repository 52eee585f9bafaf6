"""A typo in `bash speedrun.sh`'s preset, `-p overrides`, `-p stages` or its `-p NAME VALUE` arguments is refused in
one line, exit 2, before a run directory exists (no empty run left behind with a resume hint that would fail the same
way); valid overrides pass."""
import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def speedrun_sh(runs, *args, run_id=""):
    env = {**os.environ, "MODERN_LLM_RUNS": str(runs), "MODERN_LLM_PYTHON": sys.executable, "RUN_ID": run_id}
    return subprocess.run(["bash", str(ROOT / "speedrun.sh"), *args], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)

@pytest.mark.parametrize("args,names", [
    (["smok"], "unknown preset 'smok'"),
    (["smoke", "-p", "overrides", "train.pretrain.max_stepz=3"], "unknown key 'train.pretrain.max_stepz'"),
    (["smoke", "-p", "stages", "pretrian,sft"], "stage 'pretrian'"),
    (["smoke", "-p", "resume"], "expected -p NAME VALUE"),
    (["smoke", "-x", "foo"], "got: -x foo"),
])
def test_typo_refused_before_a_run_directory(tmp_path, args, names):
    r = speedrun_sh(tmp_path / "runs", *args)
    assert r.returncode == 2, r
    assert len(r.stderr.strip().splitlines()) == 1 and names in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()

def test_valid_overrides_pass_the_check(tmp_path):
    # a good preset, overrides and stages get past the check; the bad run id then stops the run before it starts
    r = speedrun_sh(tmp_path / "runs", "smoke", "-p", "overrides", "train.pretrain.max_steps=3 train.sft.max_steps=2",
                    "-p", "stages", "pretrain,sft", run_id="../x")
    assert r.returncode == 2 and "run id '../x'" in r.stderr, r.stderr

@pytest.mark.slow
def test_usage_example_short_run_completes(tmp_path):
    # speedrun.sh's own usage example, a short pretraining run, completes: the pretrain stage's learning check
    # (loss falls by a nat) applies only to runs long enough to learn, not to a 20-step try-out (~40 s on 2 cores)
    from modern_llm.data import shared_data_dir
    if shared_data_dir() is None and not os.environ.get("MODERN_LLM_DATA"): pytest.skip("no data mirror")
    r = speedrun_sh(tmp_path / "runs", "smoke", "-p", "stages", "pretrain,sft",
                    "-p", "overrides", "train.pretrain.max_steps=20 train.sft.max_steps=5")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "too few for the learning check" in (tmp_path / "runs" / "latest" / "notebooks" / "pretrain.ipynb").read_text()
