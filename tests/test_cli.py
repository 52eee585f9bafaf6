"""The `modern-llm` console script, run as a user runs it (a subprocess)."""
import json, subprocess, sys
from pathlib import Path
import pytest

EXE = Path(sys.executable).parent / "modern-llm"
PARAMS = Path(__file__).resolve().parents[1] / "params"

def cli(*args):
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=120)

def test_help_lists_every_command():
    r = cli("--help")
    assert r.returncode == 0, r.stderr
    for c in ("presets", "preset", "data", "train", "evaluate", "report", "speedrun", "chat"): assert c in r.stdout

@pytest.mark.parametrize("cmd", [["preset", "show"], ["data", "pull"], ["train"], ["evaluate"], ["report"], ["speedrun"], ["chat"]])
def test_subcommand_help(cmd):
    r = cli(*cmd, "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: modern-llm " + cmd[0]), r.stdout + r.stderr

def test_presets_lists_every_file():
    r = cli("presets")
    assert r.returncode == 0, r.stderr
    listed = [line.split()[0] for line in r.stdout.splitlines()]
    assert listed == sorted(p.stem for p in PARAMS.glob("*.yaml")), r.stdout
    assert "invalid" not in r.stdout, r.stdout

def test_local_preset_fits_a_12gb_gpu():
    r = cli("preset", "show", "local_rtx3060", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    est = out["estimates"]
    assert est["parameters"] <= 200e6 and est["train_memory_gb"] <= 12 and est["inference_memory_gb"] <= 12, est
    assert out["preset"]["model"]["vocab_size"] == out["preset"]["data"]["vocab_size"]   # resolved, not raw YAML

def test_bad_preset_key_is_one_line_exit_2():
    r = cli("preset", "show", "smoke", "model.d_modle=64")
    assert r.returncode == 2
    assert "smoke.yaml" in r.stderr and "model.d_modle" in r.stderr and "did you mean 'd_model'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr

def test_missing_run_dir_exit_2():
    r = cli("report", "/nonexistent/run-dir")
    assert r.returncode == 2 and "no run directory" in r.stderr and "Traceback" not in r.stderr, r.stderr

def test_user_error_traceback_only_with_debug():
    r = cli("--debug", "preset", "show", "smoke", "model.d_modle=64")
    assert r.returncode != 0 and "Traceback" in r.stderr and "PresetError" in r.stderr, r.stderr
    r = cli("preset", "show", "smoke", "model.d_modle=64")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
