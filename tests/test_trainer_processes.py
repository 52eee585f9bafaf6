"""The trainer across processes: torchrun DDP (gloo, 2 CPU processes) reproduces the 1-process loss curve; SIGTERM and
SIGUSR1 (also through torchrun, as SLURM delivers it) give a loadable checkpoint and exit 0; a process killed while
writing a checkpoint leaves the previous one loadable and the run resumable; `run_pretrain` under torchrun.

Run as a script, this file is the worker: `python tests/test_trainer_processes.py OUT_DIR [--key value ...]`, or
`python tests/test_trainer_processes.py pretrain RUN_DIR MIRROR MICRO_BATCH`."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[1])}


def worker(out_dir, max_steps=6, micro_batch=8, batch_tokens=256, save_every=0, log_every=1, resume=False, slow_save=0.0, ragged=0):
    "A toy training run (tiny model, `ToyBatches`, `ragged`: masked targets); rank/world from the torchrun environment. Prints the result as JSON."
    import torch
    import modern_llm.checkpoint as ck
    from modern_llm.config import HardwareConfig, ModelConfig, TrainConfig
    from modern_llm.runtime import resolve_runtime
    from modern_llm.model import ModernDecoderLM
    from modern_llm.trainer import ToyBatches, Trainer
    torch.set_num_threads(1)
    rt = resolve_runtime(HardwareConfig(device="cpu", mixed_precision="fp32"))
    out = Path(out_dir)
    if rt.is_main: (out / f"pid_{os.getpid()}").write_text("")
    if slow_save:                      # every save after the first stalls inside the temp directory (to be killed there)
        real, calls = ck.save_optimizer, []
        def slow(*a):
            real(*a); calls.append(1)
            if len(calls) > 1: time.sleep(slow_save)
        ck.save_optimizer = slow
    torch.manual_seed(0)
    model = ModernDecoderLM(ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=16))
    cfg = TrainConfig(max_steps=max_steps, batch_tokens=batch_tokens, micro_batch_size=micro_batch, lr=1e-2, warmup_steps=2,
                      eval_every=0, log_every=log_every, save_every=save_every, keep_last=3)
    tr = Trainer(model, cfg, rt, train_batches=ToyBatches(64, 16, micro_batch, rt.rank, rt.world_size, seed=3, ragged=bool(ragged)),
                 tokens_per_micro_batch=micro_batch * 16, out_dir=out / "train", metrics_path=out / "metrics.jsonl",
                 tensorboard=False)
    res = tr.fit(resume=resume)
    if rt.is_main: print("RESULT " + json.dumps({"step": res["step"], "preempted": res["preempted"], "rank": rt.rank}))


def pretrain_worker(run_dir, mirror, micro_batch):
    "`run_pretrain` on a tiny preset over a synthetic mirror (see `fake_mirror`)."
    import dataclasses, torch
    from modern_llm.config import CorpusSpec, load_preset
    from modern_llm.pretrain import run_pretrain
    torch.set_num_threads(1)
    p = load_preset("smoke", ["hardware.num_threads=0"])
    p.model = dataclasses.replace(p.model, d_model=32, vocab_size=300, max_seq_len=32)
    p.data = dataclasses.replace(p.data, mirror=mirror, vocab_size=300, seq_len=32, tokens_target=10**6, tokenizer_train_bytes=50_000,
                                 pretrain_mix=[CorpusSpec("wikitext2", 0.5, split="validation"), CorpusSpec("tinystories", 0.5, split="validation")])
    p.train.pretrain = dataclasses.replace(p.train.pretrain, max_steps=6, batch_tokens=512, micro_batch_size=micro_batch,
                                           lr=1e-2, warmup_steps=2, eval_every=3, eval_batches=2, log_every=1, save_every=3)
    res = run_pretrain(p, run_dir)
    if int(os.environ.get("RANK", 0)) == 0: print("RESULT " + json.dumps({"step": res.get("steps", res.get("step")), "preempted": res.get("preempted", False),
                                  "summary": "val_bpb" in res}))


def fake_mirror(root):
    "A few synthetic WikiText articles and stories, in the mirror's layout."
    import random
    from modern_llm.data import write_gz
    rng, words = random.Random(0), "the a cat dog sat ran on under mat tree big small red blue happy sad and then".split()
    para = lambda n: " ".join(rng.choice(words) for _ in range(n)) + ".\n"
    write_gz(Path(root) / "wikitext2" / "validation.txt.gz",
             " \n" + "".join(f" = Article {i} = \n\n" + "".join(" " + para(40) for _ in range(6)) for i in range(8)))
    write_gz(Path(root) / "tinystories" / "validation.txt.gz", "".join(para(60) + "<|endoftext|>\n" for _ in range(30)))
    return str(root)


def _losses(out_dir): return [json.loads(l)["loss"] for l in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]
def _result(stdout): return json.loads(next(l for l in stdout.splitlines() if l.startswith("RESULT "))[7:])
def _cmd(out_dir, **kw): return [str(HERE), str(out_dir), *[a for k, v in kw.items() for a in (f"--{k}", str(v))]]
def _wait_for(pred, proc, timeout=60):
    t = time.time()
    while not pred():
        assert proc.poll() is None, f"worker exited early: {proc.communicate()}"
        assert time.time() - t < timeout, "timed out"
        time.sleep(0.1)


def test_torchrun_ddp_matches_one_process(tmp_path):
    "2 processes x micro-batch 4 = 1 process x micro-batch 8 (same global batch, same data): same losses."
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(); two.mkdir()
    subprocess.run([sys.executable, *_cmd(one, micro_batch=8)], env=ENV, check=True, capture_output=True, timeout=120)
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        *_cmd(two, micro_batch=4)], env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert _result(p.stdout) == {"step": 6, "preempted": False, "rank": 0}     # only rank 0 reports (and writes)
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-4, (a, b)
    assert len(list(two.glob("pid_*"))) == 1 and [p.name for p in (two / "train").iterdir()] == ["step_000006"]


def test_torchrun_unequal_target_counts_match_one_process(tmp_path):
    "Masked targets, so each rank and micro-batch has its own count: 2 processes give the 1-process steps (loss, weights)."
    import torch
    from modern_llm.checkpoint import load_model
    from modern_llm.trainer import ToyBatches
    ranks = [ToyBatches(64, 16, 4, r, 2, seed=3, ragged=True) for r in (0, 1)]
    counts = [[int((next(b)[1] != -100).sum()) for b in ranks] for _ in range(12)]
    assert all(a != b for a, b in counts), counts                       # every micro-batch: the ranks' counts differ
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(); two.mkdir()
    subprocess.run([sys.executable, *_cmd(one, micro_batch=8, ragged=1)], env=ENV, check=True, capture_output=True, timeout=120)
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        *_cmd(two, micro_batch=4, ragged=1)], env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 6 and max(abs(x - y) for x, y in zip(a, b)) <= 1e-5, (a, b)
    wa, wb = (load_model(d / "train" / "step_000006")[0].state_dict() for d in (one, two))
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) <= 1e-5
    rows = [json.loads(l) for l in (two / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["target_tokens"] == sum(counts[0]) + sum(counts[1])     # step 1 = micro-batches 0 and 1 of both ranks


def test_torchrun_run_pretrain_matches_one_process(tmp_path):
    "The whole stage under torchrun: rank 0 builds tokenizer and shards, both train, rank 0 exports and summarises."
    mirror = fake_mirror(tmp_path / "mirror")
    runs = {}
    for name, launcher, micro in (("one", [], 8), ("two", ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], 4)):
        p = subprocess.run([sys.executable, *launcher, str(HERE), "pretrain", str(tmp_path / name), mirror, str(micro)],
                           env=ENV, capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stderr[-3000:]
        assert _result(p.stdout) == {"step": 6, "preempted": False, "summary": True}
        runs[name] = [json.loads(l) for l in (tmp_path / name / "metrics" / "pretrain.jsonl").read_text().splitlines()]
        assert (tmp_path / name / "checkpoints" / "base" / "tokenizer.json").is_file()
    a, b = ([r["loss"] for r in runs[k] if "loss" in r] for k in ("one", "two"))
    assert len(a) == len(b) == 6 and max(abs(x - y) for x, y in zip(a, b)) <= 1e-4, (a, b)
    va, vb = ([r["val/loss"] for r in runs[k] if "val/loss" in r] for k in ("one", "two"))
    assert len(va) == 2 and max(abs(x - y) for x, y in zip(va, vb)) <= 1e-4


def _check_preempted(out_dir):
    from modern_llm.checkpoint import latest_checkpoint, load_model, load_trainer_state
    ck = latest_checkpoint(Path(out_dir) / "train")
    st = load_trainer_state(ck)
    assert st["preempted"] and st["step"] == int(ck.name.split("_")[1]) >= 2
    model, _, cfg = load_model(ck)
    assert cfg["extra"]["stage"] == "pretrain" and sum(p.numel() for p in model.parameters()) > 0
    return st["step"]


def test_sigterm_saves_and_exits_0(tmp_path):
    proc = subprocess.Popen([sys.executable, *_cmd(tmp_path, max_steps=100_000)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (tmp_path / "metrics.jsonl").exists() and len(_losses(tmp_path)) >= 2, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    res = _result(out)
    assert res["preempted"] and res["step"] == _check_preempted(tmp_path)
    # the requeued job continues from there
    p = subprocess.run([sys.executable, *_cmd(tmp_path, max_steps=res["step"] + 2, resume=True)], env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert _result(p.stdout)["step"] == res["step"] + 2 and len(_losses(tmp_path)) == res["step"] + 2


def test_sigusr1_through_torchrun_as_slurm_sends_it(tmp_path):
    "SLURM's --signal=USR1 reaches every process of the step: torchrun (run with USR1 ignored) and the worker."
    cmd = ["bash", "-c", 'trap "" USR1; exec "$@"', "usr1-ignored", sys.executable, "-m", "torch.distributed.run",
           "--standalone", "--nproc_per_node=1", *_cmd(tmp_path, max_steps=100_000)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(lambda: (tmp_path / "metrics.jsonl").exists() and len(_losses(tmp_path)) >= 2, proc, timeout=90)
    worker_pid = int(next(tmp_path.glob("pid_*")).name[4:])
    os.killpg(proc.pid, signal.SIGUSR1); os.kill(worker_pid, signal.SIGUSR1)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert _result(out)["preempted"]
    _check_preempted(tmp_path)


def test_kill_during_checkpoint_write_keeps_previous(tmp_path):
    from modern_llm.checkpoint import latest_checkpoint, load_model, load_trainer_state
    proc = subprocess.Popen([sys.executable, *_cmd(tmp_path, max_steps=100, save_every=2, slow_save=60)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    train = tmp_path / "train"
    _wait_for(lambda: train.exists() and any(p.name.startswith(".step_000004.tmp-") for p in train.iterdir()), proc)
    proc.kill(); proc.communicate(timeout=30)                   # SIGKILL mid-write: no handler, no cleanup
    assert latest_checkpoint(train).name == "step_000002"
    load_model(latest_checkpoint(train)); assert load_trainer_state(latest_checkpoint(train))["step"] == 2
    p = subprocess.run([sys.executable, *_cmd(tmp_path, max_steps=4, save_every=2, resume=True)], env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert sorted(x.name for x in train.iterdir()) == ["step_000002", "step_000004"]   # the stale temp dir is gone


if __name__ == "__main__":
    if sys.argv[1] == "pretrain": pretrain_worker(sys.argv[2], sys.argv[3], int(sys.argv[4])); sys.exit()
    conv, a = {"resume": lambda v: v == "True", "slow_save": float}, sys.argv[2:]
    worker(sys.argv[1], **{k[2:]: conv.get(k[2:], int)(v) for k, v in zip(a[::2], a[1::2])})
