"""The TACC job scripts under a real one-node SLURM (`scripts/slurm_local/up.sh`: Debian's slurmctld, slurmd and munge,
no cgroups), on CPU with a tiny preset and two gloo workers per job: a job runs to completion like a plain `torchrun`
run; a USR1 notice (from `scancel --signal=USR1`, and from the script's own `--signal=USR1@120` near a time limit)
makes every worker stop after its step, rank 0 save, the job requeue itself and resume to bit-identical weights; a bad
preset fails the job without a requeue; `submit_speedrun.sh` runs the stages under `sbatch`.

The jobs are submitted together (module fixture `jobs`) and run side by side (`--oversubscribe`); each test waits for
its own. Skipped, with the reason, where SLURM cannot be started (not root, no apt-get, daemons failing); set
MODERN_LLM_REQUIRE_SLURM=1 to make that a failure instead (CI). Multi-node command lines are checked with fake
commands in tests/test_slurm_scripts.py: one machine cannot show them."""
import json, os, re, subprocess, sys, time
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
TACC = REPO / "scripts" / "tacc"
STATE = Path(os.environ.get("SLURM_LOCAL_DIR", "/tmp/modern-llm-slurm"))
DATA = os.environ.get("MODERN_LLM_DATA") or str(REPO.parent / "shared" / "data")
STEPS = 30
BIN = Path(sys.executable).parent          # the environment running the tests (torchrun, modern-llm, python)

# Two workers, micro-batch 4 x 128 tokens each, 1024 tokens per step, a 40k-parameter model: seconds per run.
TINY = f"""extends: smoke
model: {{d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2}}
train:
  pretrain: {{max_steps: {STEPS}, batch_tokens: 1024, micro_batch_size: 4, lr: 0.01, warmup_steps: 2, eval_every: 0, eval_batches: 2, log_every: 1, save_every: 0, sink_twin: false}}
  sft: {{max_steps: 4, batch_tokens: 1024, micro_batch_size: 4, warmup_steps: 1, eval_every: 0, eval_batches: 2, log_every: 1}}
data:
  pretrain_mix:
    - {{name: tinystories, split: validation, weight: 1.0}}
  tokens_target: {STEPS * 1024}
  val_docs: 2
  seq_len: 128
  vocab_size: 300
  tokenizer_train_bytes: 100000
  sft_mix:
    - {{name: alpaca, weight: 1.0, max_examples: 64}}
"""

# The `modern-llm` the jobs run (first on PATH through the test's VENV): the real CLI, with a pause before every
# training step on the first attempt only (TEST_STEP_PAUSE seconds), so that a notice reliably lands mid-training
# while the requeued attempt runs at full speed. The pause changes timing, never numbers.
SLOW_CLI = f"""#!{sys.executable}
import os, sys, time
if os.environ.get("SLURM_RESTART_COUNT", "0") == "0" and float(os.environ.get("TEST_STEP_PAUSE", "0")) > 0:
    from modern_llm.trainer import Trainer
    real_step, pause = Trainer.train_step, float(os.environ["TEST_STEP_PAUSE"])
    def paused_step(self):
        time.sleep(pause); return real_step(self)
    Trainer.train_step = paused_step
from modern_llm.cli import main
sys.exit(main())
"""

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def _cannot_run():
    if sys.platform != "linux": return "SLURM tests need Linux"
    if os.geteuid() != 0: return "SLURM tests need root (scripts/slurm_local/up.sh installs and starts slurmd)"
    if not Path(DATA, "tinystories").is_dir(): return f"no data mirror at {DATA} (set MODERN_LLM_DATA)"
    return None


def _running(daemon):
    pid = STATE / "run" / f"{daemon}.pid"
    return pid.exists() and Path(f"/proc/{pid.read_text().strip()}").exists()


@pytest.fixture(scope="module")
def slurm():
    "Start the local SLURM (or use the one running); its environment for clients. Stops it again if it started it."
    why, started = _cannot_run(), not _running("slurmctld")
    if why is None:
        p = subprocess.run(["bash", str(REPO / "scripts" / "slurm_local" / "up.sh")], capture_output=True, text=True,
                           timeout=900, env={**os.environ, "SLURM_LOCAL_DIR": str(STATE)})
        if p.returncode != 0: why = f"scripts/slurm_local/up.sh failed: {(p.stderr or p.stdout).strip()[-500:]}"
    if why:
        if os.environ.get("MODERN_LLM_REQUIRE_SLURM") == "1": pytest.fail(why)
        pytest.skip(why)
    yield {**os.environ, "SLURM_CONF": str(STATE / "slurm.conf"), "PATH": f"/usr/sbin:/usr/bin:{os.environ.get('PATH', '/bin')}"}
    if started: subprocess.run(["bash", str(REPO / "scripts" / "slurm_local" / "down.sh")], timeout=60,
                               env={**os.environ, "SLURM_LOCAL_DIR": str(STATE)}, capture_output=True)


def job_state(env, job):
    "scontrol's view of a job: {'JobState': ..., 'Restarts': ..., 'ExitCode': ..., ...}."
    out = subprocess.run(["scontrol", "show", "job", str(job)], env=env, capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def wait_job(env, job, timeout=300):
    t = time.time()
    while (st := job_state(env, job))["JobState"] not in TERMINAL:
        assert time.time() - t < timeout, f"job {job} still {st['JobState']} after {timeout} s"
        time.sleep(1)
    return st


class Jobs:
    "The jobs of this module, all submitted at once (they run side by side) and looked up by name."
    def __init__(self, env, tmp):
        self.env, self.tmp, self.ids = env, tmp, {}
        venv = tmp / "venv"; (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "modern-llm").write_text(SLOW_CLI); (venv / "bin" / "modern-llm").chmod(0o755)
        (venv / "bin" / "activate").write_text(f'export PATH="{venv}/bin:{BIN}:$PATH"\n')
        (tmp / "tiny.yaml").write_text(TINY)
        (tmp / "bad.yaml").write_text(TINY.replace("max_steps: 4,", "max_stepz: 4,"))     # a typo in the sft section
        # the local cluster has no modules (MODULES=), no GPUs (--gpus-per-node=0; GPUS_PER_NODE=2 starts 2 workers)
        self.job_env = {**env, "SCRATCH": str(tmp / "scratch"), "VENV": str(venv), "MODULES": "", "GPUS_PER_NODE": "2",
                        "MODERN_LLM_DATA": DATA, "OMP_NUM_THREADS": "1", "PRESET": str(tmp / "tiny.yaml")}

    def submit(self, name, script, *sbatch_args, **env):
        out = self.tmp / f"{name}.out"
        cmd = ["sbatch", "--parsable", f"--chdir={REPO}", "--partition=local", "--gpus-per-node=0", "--oversubscribe",
               f"--job-name={name}", f"--output={out}", *sbatch_args, str(TACC / script)]
        p = subprocess.run(cmd, env={**self.job_env, **env}, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        self.ids[name] = int(p.stdout.strip().split(";")[0])
        return self.ids[name]

    def run_dir(self, name): return self.tmp / "runs" / name
    def output(self, name): return (self.tmp / f"{name}.out").read_text()
    def wait(self, name, timeout=300): return wait_job(self.env, self.ids[name], timeout)


@pytest.fixture(scope="module")
def jobs(slurm, tmp_path_factory):
    j = Jobs(slurm, tmp_path_factory.mktemp("slurm"))
    j.submit("reference", "submit_pretrain.sh", RUN_DIR=str(j.run_dir("reference")))
    # USR1 with scancel once the job trains (the first test below); 1 s per step leaves time to send it
    j.submit("scancel", "submit_pretrain.sh", RUN_DIR=str(j.run_dir("scancel")), TEST_STEP_PAUSE="1")
    # the scripts' --signal=B:USR1@N (N=100 here, 120 in the scripts) with a 3-minute limit: SLURM checks time limits
    # about every 30 s, so the notice comes up to 30 s early, 50-80 s into the job, perhaps before the workers listen
    # (the batch shell passes it on every 5 s until they do); 3 s per step keeps the first attempt training past that.
    # The requeued attempt (full speed, ~20 s) gets a notice of its own 50 s after it starts, so it must end sooner: a
    # time limit that leaves less than N+30 s of work per attempt requeues the job forever.
    j.submit("timelimit", "submit_pretrain.sh", "--time=3", "--signal=B:USR1@100", RUN_DIR=str(j.run_dir("timelimit")),
             TEST_STEP_PAUSE="3")
    j.submit("bad_preset", "submit_pretrain.sh", RUN_DIR=str(j.run_dir("bad_preset")), PRESET=str(j.tmp / "bad.yaml"))
    j.submit("speedrun", "submit_speedrun.sh", TARGET=str(j.tmp / "tiny.yaml"), RUN_ID="speedrun",
             SPEEDRUN_ARGS="-p stages pretrain,sft")
    yield j
    subprocess.run(["scancel", *map(str, j.ids.values())], env=slurm, capture_output=True)   # after a failed test


def metrics(run_dir):
    return [json.loads(l) for l in (Path(run_dir) / "metrics" / "pretrain.jsonl").read_text().splitlines()]


def losses(run_dir): return [(r["step"], r["loss"]) for r in metrics(run_dir) if "loss" in r]


def weights(run_dir):
    from safetensors.torch import load_file
    return load_file(str(Path(run_dir) / "checkpoints" / "base" / "model.safetensors"))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb)
    import torch
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"weights differ (not bit-identical) in {different}"


def _attempts(out):
    "The output file of a requeued job, split at each attempt's first line (`--open-mode=append` keeps all of them)."
    return re.split(r"(?m)^(?=job \d+ \(restart \d+\))", out)[1:]


def check_preempted_and_resumed(jobs, name):
    st = jobs.wait(name)
    out = jobs.output(name)
    assert (st["JobState"], st["ExitCode"], st["Restarts"]) == ("COMPLETED", "0:0", "1"), out[-4000:]
    first, second = _attempts(out)                       # both attempts in one file: --open-mode=append
    assert first.startswith(f"job {jobs.ids[name]} (restart 0)") and second.startswith(f"job {jobs.ids[name]} (restart 1)")
    # every worker stopped after its step and returned 0 (the CLI's line, once per rank); then the job requeued itself
    assert first.count("pretrain: preempted; the last checkpoint is saved") == 2, first[-4000:]
    assert f"requeueing job {jobs.ids[name]}" in first and "pretraining done" not in first
    saved = int(re.search(r"stop signal; saved \S+ at step (\d+)", first).group(1))
    assert 1 <= saved < STEPS
    assert re.search(rf"pretrain: +\d+%\|[^|]*\| {saved}/{STEPS} \[00:00<", second), second[-4000:]   # resumed there
    assert "pretraining done" in second and "requeueing" not in second
    ref = jobs.run_dir("reference")
    jobs.wait("reference")
    assert losses(jobs.run_dir(name)) == losses(ref)         # each step logged once, as in the uninterrupted run
    assert_same_weights(jobs.run_dir(name), ref)
    return saved


def test_scancel_usr1_saves_requeues_and_resumes(jobs):
    "scancel --signal=USR1 JOB (what a preemption notice looks like) while the job trains."
    run, job = jobs.run_dir("scancel"), jobs.ids["scancel"]
    t = time.time()
    while not ((run / "metrics" / "pretrain.jsonl").exists() and len(losses(run)) >= 3):
        assert job_state(jobs.env, job)["JobState"] in {"PENDING", "RUNNING", "CONFIGURING"}, jobs.output("scancel")[-3000:]
        assert time.time() - t < 240, "the job did not start training"
        time.sleep(0.5)
    # to the job's steps only (the srun'd torchrun and its workers), not the batch shell: that takes --batch / --full
    subprocess.run(["scancel", "--signal=USR1", str(job)], env=jobs.env, check=True)
    check_preempted_and_resumed(jobs, "scancel")


def test_time_limit_notice_saves_requeues_and_resumes(jobs):
    "SLURM's own time-limit notice (`--signal=B:USR1@100`: 100 to 130 s before a 3-minute limit), as the scripts ask for it."
    saved = check_preempted_and_resumed(jobs, "timelimit")
    assert "notice (USR1)" in _attempts(jobs.output("timelimit"))[0]
    assert saved < STEPS - 5                              # the notice came well before the end of the paused first attempt


def test_pretrain_job_matches_plain_torchrun(jobs, tmp_path):
    "sbatch submit_pretrain.sh: two workers, the base checkpoint, and the loss curve of a plain 2-process torchrun run."
    plain = tmp_path / "plain"
    p = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "--no-python", str(BIN / "modern-llm"),
                        "train", "pretrain", "--preset", str(jobs.tmp / "tiny.yaml"), "--run-dir", str(plain)],
                       env=jobs.job_env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    st = jobs.wait("reference")
    out = jobs.output("reference")
    assert (st["JobState"], st["ExitCode"], st["Restarts"]) == ("COMPLETED", "0:0", "0"), out[-3000:]
    assert "1 node(s) x 2 GPU(s)" in out and "pretraining done" in out
    run = jobs.run_dir("reference")
    assert (run / "checkpoints" / "base" / "model.safetensors").is_file()
    assert json.loads((run / "results" / "pretrain_summary.json").read_text())["world_size"] == 2
    a, b = losses(run), losses(plain)
    assert [s for s, _ in a] == list(range(1, STEPS + 1)) and a == b, (a, b)
    assert_same_weights(run, plain)


def test_bad_preset_fails_without_requeue(jobs):
    st = jobs.wait("bad_preset")
    out = jobs.output("bad_preset")
    assert (st["JobState"], st["Restarts"]) == ("FAILED", "0"), out[-3000:]
    assert st["ExitCode"] != "0:0"
    assert st["ExitCode"] == "2:0" and "unknown key 'train.sft.max_stepz'" in out, out[-3000:]
    assert "not requeued" in out and "requeueing" not in out and "torchrun" not in out    # no worker was started


def test_speedrun_job_runs_the_stages(jobs):
    "submit_speedrun.sh: pretraining with torchrun (2 workers), then speedrun.sh runs the stages on the same run."
    st = jobs.wait("speedrun", timeout=600)
    out = jobs.output("speedrun")
    assert (st["JobState"], st["ExitCode"], st["Restarts"]) == ("COMPLETED", "0:0", "0"), out[-4000:]
    assert "speedrun done" in out and "setup:" not in out          # the job's Python, no environment set-up on the node
    run = jobs.tmp / "scratch" / "modern-llm" / "runs" / "speedrun"
    assert json.loads((run / "results" / "pretrain_summary.json").read_text())["world_size"] == 2
    stages = json.loads((run / "stages.json").read_text())["stages"]
    # pretraining ran under torchrun before speedrun.sh started; the job recorded it (the report counts its time), and
    # the speedrun found its outputs complete and skipped it
    assert stages["pretrain"]["status"] == "done" and stages["pretrain"]["action"] == "skipped", stages
    assert stages["pretrain"]["wall_s"] > 0 and stages["pretrain"]["finished"] <= stages["sft"]["started"], stages
    assert stages["sft"]["status"] == "done" and stages["sft"]["action"] == "ran", stages
    for f in ("preset.yaml", "env.json", "speedrun.ipynb", "checkpoints/base/model.safetensors", "notebooks/sft.ipynb",
              "metrics/pretrain.jsonl", "metrics/sft.jsonl"):
        assert (run / f).is_file(), f
