"""scripts/setup_env.sh on a scratch clone: the environment that `speedrun.sh` and `scripts/check.sh` set up themselves.

One real set-up (torch from the wheel pip finds on this machine, the package and its dependencies: ~2-4 minutes on
2 cores), then: a second call is a no-op, a broken environment is detected and repaired, an unreachable registry
fails with one line and leaves no environment that a later run mistakes for a good one."""
import os, shutil, subprocess, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = "scripts/setup_env.sh"

def _scratch_clone(tmp_path) -> Path:
    "The files an editable install needs, as a fresh clone has them (no .venv)."
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    for f in ("pyproject.toml", "README.md"): shutil.copy(ROOT / f, clone / f)
    shutil.copy(ROOT / SETUP, clone / SETUP)
    shutil.copytree(ROOT / "modern_llm", clone / "modern_llm", ignore=shutil.ignore_patterns("__pycache__"))
    return clone

def _setup(clone, *args, env=None):
    e = {k: v for k, v in os.environ.items() if k not in ("MODERN_LLM_VENV", "MODERN_LLM_TORCH", "VIRTUAL_ENV")}
    t0 = time.time()
    r = subprocess.run(["bash", SETUP, *args], cwd=clone, env={**e, **(env or {})}, capture_output=True, text=True, timeout=900)
    return r, time.time() - t0

def _offline_pip(tmp_path) -> dict:
    "pip settings under which no registry answers (a closed local port, no config, no local wheels)."
    return {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": "", "PIP_NO_CACHE_DIR": "1",
            "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "3"}

@pytest.mark.skipif(shutil.which("python3") is None, reason="needs python3 on PATH")
def test_setup_fresh_noop_broken_and_offline(tmp_path):
    clone = _scratch_clone(tmp_path)
    venv = clone / ".venv"
    # 1. registry unreachable: one clear line, exit 2, and no stamp (the half-made venv is not taken for a good one)
    r, _ = _setup(clone, env=_offline_pip(tmp_path))
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("setup: error:")]
    assert len(errors) == 1 and "no package registry answered" in errors[0], r.stderr
    assert not (venv / ".modern_llm_setup").exists()
    r, _ = _setup(clone, "--check")
    assert r.returncode == 1
    # 2. the real set-up repairs that half-made environment: torch first, then the package, then the stamp
    r, secs = _setup(clone)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "installing torch==" in out and "installing modern_llm (editable)" in out and "setup: ready:" in out
    assert out.index("installing torch") < out.index("installing modern_llm")
    py = venv / "bin" / "python"
    where = subprocess.run([py, "-I", "-c", "import modern_llm, torch, papermill; print(modern_llm.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve().parent == (clone / "modern_llm").resolve()      # this checkout's package, editable
    print(f"fresh set-up: {secs:.0f} s")
    # 3. a second call is a no-op: prints nothing, installs nothing
    r, secs = _setup(clone)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr
    assert _setup(clone, "--check")[0].returncode == 0
    # 4. broken: a venv without the package is detected and repaired, torch kept
    subprocess.run([py, "-m", "pip", "uninstall", "-y", "-q", "modern_llm"], check=True, capture_output=True)
    assert _setup(clone, "--check")[0].returncode == 1
    r, _ = _setup(clone)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "already installed, kept" in r.stdout and "installing modern_llm" in r.stdout
    assert subprocess.run([py, "-I", "-c", "import modern_llm"]).returncode == 0
    # 5. stale: a changed pyproject.toml makes the stamp stale
    (clone / "pyproject.toml").write_text((clone / "pyproject.toml").read_text() + "\n# changed\n")
    assert _setup(clone, "--check")[0].returncode == 1
