"""The TACC job scripts, run with fake `sbatch`/`srun`/`scontrol`/`module`/`torchrun`/`modern-llm` on PATH that record
their argv: the command lines they build, the signal set-up, and the requeue decision after a preemption."""
import json, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
TACC = REPO / "scripts" / "tacc"
SCRIPTS = ["common.sh", "submit_pretrain.sh", "submit_speedrun.sh"]

RECORD = f"""#!{sys.executable}
import json, os, signal, sys
name = os.path.basename(sys.argv[0])
row = {{"name": name, "argv": sys.argv[1:], "usr1_ignored": signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN,
        "env": {{k: os.environ.get(k) for k in ("MASTER_ADDR", "MODERN_LLM_DATA", "HF_HUB_OFFLINE", "RUN_ID", "MODERN_LLM_RUNS", "PRESET", "MODERN_LLM_PYTHON")}}}}
with open(os.environ["FAKE_LOG"], "a") as f: f.write(json.dumps(row) + "\\n")
"""

PRESET_CHECK = """
if sys.argv[1:3] == ["preset", "show"] and os.environ.get("FAKE_BAD_PRESET"):
    sys.exit("modern-llm: error: p.yaml: unknown key 'train.sft.max_stepz'")
"""

FAKES = {
    "sbatch": RECORD, "module": RECORD, "scancel": RECORD,
    "scontrol": RECORD + """
if sys.argv[1:3] == ["show", "hostnames"]: print("c001-001\\nc001-002")
""",
    "srun": RECORD + """
cmd = sys.argv[1:]
while cmd and cmd[0].startswith("-"): cmd = cmd[1:]
os.execvp(cmd[0], cmd)
""",
    "torchrun": RECORD + """
run_dir = sys.argv[sys.argv.index("--run-dir") + 1]
if os.environ.get("FAKE_PREEMPT"):
    d = os.path.join(run_dir, "train", "pretrain", "step_000010"); os.makedirs(d, exist_ok=True)
    json.dump({"step": 10, "preempted": True}, open(os.path.join(d, "trainer_state.json"), "w"), indent=1)
import time; time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
sys.exit(int(os.environ.get("FAKE_RC", "0")))
""",
}


@pytest.fixture
def fake(tmp_path):
    "A fake checkout (the real scripts, a recording speedrun.sh), fake tools on PATH, a fake venv and $SCRATCH."
    repo, bin_, venv, scratch = tmp_path / "repo", tmp_path / "bin", tmp_path / "venv", tmp_path / "scratch"
    (repo / "scripts" / "tacc").mkdir(parents=True); (repo / "modern_llm").mkdir(); (repo / "pyproject.toml").write_text("")
    for s in SCRIPTS: shutil.copy(TACC / s, repo / "scripts" / "tacc" / s)
    (repo / "speedrun.sh").write_text(f"#!/bin/bash\nexec {venv}/bin/speedrun-recorder \"$@\"\n")
    for d in (bin_, venv / "bin", scratch): d.mkdir(parents=True)
    for name, src in FAKES.items(): (bin_ / name).write_text(src)
    (venv / "bin" / "modern-llm").write_text(RECORD + PRESET_CHECK); (venv / "bin" / "speedrun-recorder").write_text(RECORD)
    (venv / "bin" / "activate").write_text(f'export PATH="{venv}/bin:$PATH"\n')
    for f in [*bin_.iterdir(), *(venv / "bin").iterdir()]: f.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "HOME": str(tmp_path), "SCRATCH": str(scratch), "VENV": str(venv),
           "FAKE_LOG": str(log), "TMPDIR": str(tmp_path)}

    def run(script, *args, job=False, **extra):
        e = {**env, **extra}
        if job: e.update(SLURM_JOB_ID="4242", SLURM_NNODES="2", SLURM_JOB_NODELIST="c001-[001-002]",
                         SLURM_GPUS_ON_NODE="4", SLURM_SUBMIT_DIR=str(repo))
        else: e["REPO"] = str(repo)
        p = subprocess.run(["bash", str(repo / "scripts" / "tacc" / script), *args], env=e, capture_output=True, text=True, timeout=60)
        calls = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
        log.unlink(missing_ok=True)
        return p, calls
    def start(script, **extra):
        "The job script in the background: (Popen, calls-so-far function)."
        e = {**env, **extra, "SLURM_JOB_ID": "4242", "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "c001-001",
             "SLURM_GPUS_ON_NODE": "4", "SLURM_SUBMIT_DIR": str(repo)}
        p = subprocess.Popen(["bash", str(repo / "scripts" / "tacc" / script)], env=e, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        return p, lambda: [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    run.repo, run.scratch, run.start = repo, scratch, start
    return run


def by(calls, name): return [c for c in calls if c["name"] == name]


@pytest.mark.parametrize("script", SCRIPTS)
def test_syntax(script):
    subprocess.run(["bash", "-n", str(TACC / script)], check=True)


@pytest.mark.parametrize("script", ["submit_pretrain.sh", "submit_speedrun.sh"])
def test_sbatch_headers(script):
    head = dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(\S+))?", (TACC / script).read_text(), re.M))
    for key in ("nodes", "ntasks-per-node", "gpus-per-node", "time", "partition", "signal", "requeue"): assert key in head, key
    # B: the notice goes to the batch shell, which passes it on to the running step (a notice sent to the step
    # directly is lost while the workers do not listen yet: tests/test_slurm_real.py)
    assert head["signal"] == "B:USR1@120" and head["ntasks-per-node"] == "1"


def test_login_node_pulls_data_then_submits(fake):
    p, calls = fake("submit_pretrain.sh", "-N", "2", "-t", "01:00:00", PRESET="tacc_smoke")
    assert p.returncode == 0, p.stderr
    assert by(calls, "module")[0]["argv"] == ["load", "cuda", "python3"]
    data = f"{fake.scratch}/modern-llm/data"
    assert by(calls, "modern-llm")[0]["argv"] == ["data", "pull", "--preset", "tacc_smoke", "--mirror", data]
    sb = by(calls, "sbatch")[0]
    assert sb["argv"] == [f"--chdir={fake.repo}", "-N", "2", "-t", "01:00:00", f"{fake.repo}/scripts/tacc/submit_pretrain.sh"]
    assert [c["name"] for c in calls] == ["module", "modern-llm", "sbatch"]       # pull before submit, nothing trained


def _torchrun_argv(scratch, preset, run_dir=None):
    return ["--nnodes=2", "--nproc_per_node=4", "--rdzv_id=4242", "--rdzv_backend=c10d", "--rdzv_endpoint=c001-001:24242",
            "--no-python", "modern-llm", "train", "pretrain", "--preset", preset,
            "--run-dir", run_dir or f"{scratch}/modern-llm/runs/{preset}", "--resume"]


def test_job_runs_torchrun_on_every_node(fake):
    p, calls = fake("submit_pretrain.sh", job=True)
    assert p.returncode == 0, p.stderr
    srun = by(calls, "srun")[0]["argv"]
    assert srun[:2] == ["--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    tr = by(calls, "torchrun")[0]
    assert tr["argv"] == _torchrun_argv(fake.scratch, "tacc_h100")
    assert tr["usr1_ignored"]                               # torchrun survives SLURM's USR1; the workers handle it
    assert tr["env"]["MASTER_ADDR"] == "c001-001" and tr["env"]["HF_HUB_OFFLINE"] == "1"
    assert tr["env"]["MODERN_LLM_DATA"] == f"{fake.scratch}/modern-llm/data"
    assert not by(calls, "scontrol") or all(c["argv"][0] != "requeue" for c in by(calls, "scontrol"))


def test_preempted_job_requeues_itself(fake):
    p, calls = fake("submit_pretrain.sh", job=True, FAKE_PREEMPT="1")
    assert p.returncode == 0, p.stderr
    assert ["requeue", "4242"] in [c["argv"] for c in by(calls, "scontrol")]
    assert "preempted" in p.stdout


def test_failure_is_not_requeued(fake):
    # a preempted checkpoint from an earlier job must not make a crashing job requeue forever
    old = fake.scratch / "modern-llm" / "runs" / "tacc_h100" / "train" / "pretrain" / "step_000005"
    old.mkdir(parents=True); (old / "trainer_state.json").write_text('{\n "preempted": true\n}')
    t = time.time() - 3600; os.utime(old / "trainer_state.json", (t, t))
    p, calls = fake("submit_pretrain.sh", job=True, FAKE_RC="1")
    assert p.returncode == 1
    assert all(c["argv"][0] != "requeue" for c in by(calls, "scontrol"))


def test_speedrun_pretrains_with_torchrun_then_runs_the_stages(fake):
    p, calls = fake("submit_speedrun.sh", job=True, TARGET="tacc-smoke")
    assert p.returncode == 0, p.stderr
    runs = f"{fake.scratch}/modern-llm/runs"
    assert by(calls, "torchrun")[0]["argv"] == _torchrun_argv(fake.scratch, "tacc_smoke", f"{runs}/speedrun-tacc_smoke")
    sr = by(calls, "speedrun-recorder")[0]
    assert sr["argv"] == ["tacc-smoke", "-p", "resume", "True"]
    assert sr["env"]["RUN_ID"] == "speedrun-tacc_smoke" and sr["env"]["MODERN_LLM_RUNS"] == runs
    assert sr["usr1_ignored"]
    assert [c["name"] for c in calls if c["name"] in ("torchrun", "speedrun-recorder")] == ["torchrun", "speedrun-recorder"]


def test_speedrun_preempted_during_pretraining_requeues_before_the_stages(fake):
    p, calls = fake("submit_speedrun.sh", job=True, FAKE_PREEMPT="1")
    assert p.returncode == 0, p.stderr
    assert ["requeue", "4242"] in [c["argv"] for c in by(calls, "scontrol")]
    assert not by(calls, "speedrun-recorder")


def test_speedrun_requeued_after_pretraining_skips_it(fake):
    base = fake.scratch / "modern-llm" / "runs" / "speedrun-tacc_h100" / "checkpoints" / "base"
    base.mkdir(parents=True); (base / "model.safetensors").write_text("")
    p, calls = fake("submit_speedrun.sh", job=True)
    assert p.returncode == 0, p.stderr
    assert not by(calls, "torchrun") and by(calls, "speedrun-recorder")[0]["argv"][0] == "tacc"


def test_job_checks_the_preset_before_starting_workers(fake):
    p, calls = fake("submit_pretrain.sh", job=True)
    assert by(calls, "modern-llm")[0]["argv"] == ["preset", "show", "tacc_h100"]
    p, calls = fake("submit_pretrain.sh", job=True, FAKE_BAD_PRESET="1")
    assert p.returncode == 2 and "max_stepz" in p.stderr and "not requeued" in p.stderr
    assert not by(calls, "torchrun") and not by(calls, "scontrol")[1:]       # hostnames only: no requeue


def test_empty_modules_loads_nothing(fake):
    "MODULES= (a machine without Lmod, e.g. scripts/slurm_local): no `module load` at all."
    p, calls = fake("submit_pretrain.sh", job=True, MODULES="")
    assert p.returncode == 0, p.stderr
    assert not by(calls, "module") and by(calls, "torchrun")


def test_speedrun_stages_use_the_jobs_python(fake):
    "speedrun.sh must not set up .venv on a compute node: it gets the job's Python, and SPEEDRUN_ARGS."
    p, calls = fake("submit_speedrun.sh", job=True, SPEEDRUN_ARGS="-p stages pretrain,sft")
    assert p.returncode == 0, p.stderr
    sr = by(calls, "speedrun-recorder")[0]
    assert sr["argv"] == ["tacc", "-p", "resume", "True", "-p", "stages", "pretrain,sft"]
    assert sr["env"]["MODERN_LLM_PYTHON"]


def test_time_limit_notice_is_passed_on_to_the_step_until_it_ends(fake):
    "B:USR1 reaches the batch shell only; it sends USR1 to the job's steps (scancel, steps only) every NOTICE_EVERY s."
    p, calls = fake.start("submit_pretrain.sh", FAKE_SLEEP="3", NOTICE_EVERY="0.5")
    t = time.time()
    while not by(calls(), "torchrun"):                       # the step runs (in the background of the batch shell)
        assert p.poll() is None and time.time() - t < 30, p.communicate()
        time.sleep(0.05)
    p.send_signal(signal.SIGUSR1)                            # what --signal=B:USR1@120 does
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err                             # the shell survived the notice and waited for the step
    notices = [c["argv"] for c in by(calls(), "scancel")]
    assert notices and all(a == ["--signal=USR1", "4242"] for a in notices) and len(notices) >= 2, notices
    assert "notice (USR1)" in out and "pretraining done" in out
