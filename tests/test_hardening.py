"""Bad inputs and what crashes leave behind (issue 16): nothing lost, nothing clobbered, one clear line for every bad input.

Each test is one example of a kind the package handles everywhere (see `modern_llm.errors`, `runs.RunLock`,
`runs.atomic_path`, `checkpoint.atomic_dir`, `data.default_mirror`). `BAD_INPUTS` below is also the source of
`docs/bad_inputs.md`: `python tests/test_hardening.py` regenerates that table from the real messages, and
`test_every_bad_input_gets_one_line_and_the_doc_is_current` fails when
the two disagree.
"""
import contextlib, io, json, os, re, subprocess, sys, time, warnings
from dataclasses import asdict
from pathlib import Path
import pytest
import torch

from modern_llm.checkpoint import atomic_dir, clean_leftovers, latest_checkpoint, save_checkpoint
from modern_llm.cli import main
from modern_llm.config import ModelConfig, TrainConfig, HardwareConfig, load_preset
from modern_llm.data import DataError, load_records, pull_mirror, write_gz, _jsonl
from modern_llm.errors import ModernLLMError
from modern_llm.model import ModernDecoderLM
from modern_llm.orchestrate import claim_run_id, link_latest, record_stage_data, start_run
from modern_llm.runs import RunLock, read_json, read_jsonl, release_run_lock
from modern_llm.runtime import resolve_runtime
from modern_llm.tokenizer import train_tokenizer
from modern_llm.trainer import ToyBatches, Trainer

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "bad_inputs.md"
EXE = Path(sys.executable).parent / "modern-llm"
TINY = dict(vocab_size=300, d_model=64, n_layers=2, n_heads=2, n_kv_heads=1, max_seq_len=32)


def run_cli(*argv) -> tuple[int, str, str]:
    "(exit code, stdout, stderr) of `modern-llm ARGV` in this process (the console script is `main`)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try: rc = main([str(a) for a in argv])
        except SystemExit as e: rc = e.code
    return rc, out.getvalue(), err.getvalue()


def one_line_exit_2(rc, err) -> str:
    "The one error line of a user error (asserting exit 2, no traceback, one line)."
    assert rc == 2, (rc, err)
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if re.match(r"modern-llm( [\w-]+)*: error: ", l)]   # argparse names the subcommand
    assert len(lines) == 1 and not err.split(lines[0], 1)[1].strip(), err     # one error line, nothing after it
    return lines[0]


@contextlib.contextmanager
def env(**kv):
    old = {k: os.environ.get(k) for k in kv}
    os.environ.update({k: str(v) for k, v in kv.items() if v is not None})
    for k, v in kv.items():
        if v is None: os.environ.pop(k, None)
    try: yield
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v


# --- fixtures ----------------------------------------------------------------------------------------------------
def tiny_checkpoint(d: Path, **cfg) -> Path:
    tok = train_tokenizer(["the cat sat on the mat. " * 20] * 5, vocab_size=300)
    return save_checkpoint(d, ModernDecoderLM(ModelConfig(**{**TINY, "vocab_size": tok.vocab_size, **cfg})), tok)


def broken_checkpoints(root: Path) -> dict[str, Path]:
    "Checkpoint directories a user might hand to `modern-llm chat`, each broken one way."
    good = tiny_checkpoint(root / "good")
    out = {}
    def clone(name):
        d = root / name; d.mkdir()
        for f in good.iterdir(): (d / f.name).write_bytes(f.read_bytes())
        out[name] = d; return d
    f = clone("truncated") / "model.safetensors"; f.write_bytes(f.read_bytes()[:200])
    torch.save({"w": torch.zeros(3)}, clone("pickle") / "model.safetensors")
    (clone("no_config") / "config.json").unlink()
    (clone("bad_config") / "config.json").write_text('{"arch": "ModernDecoderLM", "model": {')
    cj = clone("unknown_arch") / "config.json"; cj.write_text(json.dumps({**json.loads(cj.read_text()), "arch": "GPT9"}))
    return out


def gsm8k_mirror(root: Path, bad_row=None) -> Path:
    rows = [{"question": "1+1?", "answer": "1+1 = 2\n#### 2"}] * 2 + ([bad_row] if bad_row else [])
    write_gz(root / "gsm8k" / "train.jsonl.gz", _jsonl(rows))
    write_gz(root / "gsm8k" / "test.jsonl.gz", _jsonl(rows[:1]))
    return root


# --- data loss and clobbering -------------------------------------------------------------------------------------
def test_pull_with_unreachable_hub_keeps_the_mirror(tmp_path, monkeypatch):
    import datasets
    def unreachable(*a, **k): raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)")
    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    m = gsm8k_mirror(tmp_path / "mirror")
    before = {f: f.read_bytes() for f in m.rglob("*") if f.is_file()}
    line = one_line_exit_2(*run_cli("data", "pull", "--preset", "smoke", "--mirror", m, "--name", "gsm8k")[::2])
    assert "gsm8k/train: cannot load openai/gsm8k from the hub" in line, line
    assert {f: f.read_bytes() for f in m.rglob("*") if f.is_file()} == before     # nothing deleted
    assert not [p for p in m.iterdir() if p.name.startswith(".")]                  # no staging left


def test_run_id_must_be_a_plain_name(tmp_path):
    runs = tmp_path / "runs"
    line = one_line_exit_2(*run_cli("speedrun", "smoke", "--run-id", "../x", "--runs-dir", runs)[::2])
    assert "run id '../x': use a plain name" in line, line
    assert not (tmp_path / "x").exists() and not runs.exists()


def test_latest_is_replaced_only_when_it_is_our_symlink(tmp_path):
    (tmp_path / "latest").write_text("my notes")
    (tmp_path / "r1").mkdir()
    with pytest.warns(UserWarning, match="not a symlink made by a run"): assert link_latest(tmp_path / "r1") is None
    assert (tmp_path / "latest").read_text() == "my notes"
    (tmp_path / "latest").unlink(); (tmp_path / "r2").mkdir()
    link_latest(tmp_path / "r1"); link_latest(tmp_path / "r2")
    assert os.readlink(tmp_path / "latest") == "r2"


@contextlib.contextmanager
def lock_held_by_another_process(run):
    "A live process holding `run`'s lock (killed with SIGKILL on exit: its lock is left behind, stale)."
    holder = subprocess.Popen([sys.executable, "-c", "import time; from modern_llm.runs import RunLock; "
                               f"RunLock({str(run)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env={k: v for k, v in os.environ.items() if k != "MODERN_LLM_RUN_LOCKS"})
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally: holder.kill(); holder.wait()


def test_a_run_directory_in_use_is_refused(tmp_path):
    run = tmp_path / "run"
    with lock_held_by_another_process(run) as holder:
        line = one_line_exit_2(*run_cli("train", "pretrain", "--preset", "smoke", "--run-dir", run)[::2])
        assert f"run directory {run} is in use by process {holder.pid}" in line, line
        assert not (run / "preset.yaml").exists()            # the refused process wrote nothing
    # the holder was killed (SIGKILL: no cleanup): its lock is stale and the next process takes it
    with pytest.warns(UserWarning, match="stale lock"):
        with RunLock(run): pass
    assert not (run / ".lock").exists()


def test_default_run_ids_do_not_collide(tmp_path):
    now = time.time()
    ids = [claim_run_id(tmp_path, "smoke", now=now) for _ in range(3)]   # three speedruns started in the same second
    assert len(set(ids)) == 3 and ids[1] == ids[0] + "-2" and ids[2] == ids[0] + "-3", ids
    assert all((tmp_path / i).is_dir() for i in ids)


def test_publishing_a_checkpoint_never_leaves_it_missing(tmp_path):
    dst = tmp_path / "checkpoints" / "base"
    with atomic_dir(dst) as t: (t / "config.json").write_text("0")
    writer = subprocess.Popen([sys.executable, "-c", "import sys; from pathlib import Path; from modern_llm.checkpoint import atomic_dir\n"
                               f"for i in range(25):\n  with atomic_dir(Path({str(dst)!r})) as t: (t / 'config.json').write_text(str(i))"])
    misses = 0
    while writer.poll() is None: misses += not (dst / "config.json").is_file()
    assert writer.returncode == 0 and misses == 0, misses
    assert (dst / "config.json").read_text() == "24"
    # a writer killed between the two renames of the non-Linux fallback: the next run restores the last version
    os.rename(dst, dst.parent / ".base.old-999999999-1"); (dst.parent / ".base.tmp-999999999-2").mkdir()
    (dst.parent / ".base.tmp-999999999-2" / "config.json").write_text("half")
    log = clean_leftovers(dst.parent)
    assert (dst / "config.json").read_text() == "24" and sorted(p.name for p in dst.parent.iterdir()) == ["base"], log


def test_next_run_cleans_checkpoint_leftovers(tmp_path):
    with env(MODERN_LLM_DATA=str(gsm8k_mirror(tmp_path / "mirror"))):
        rd = start_run("smoke", "r", tmp_path / "runs"); release_run_lock(rd)   # this process is done with the run
        ck = rd / "checkpoints"
        tiny_checkpoint(ck / "base")
        os.rename(ck / "base", ck / ".base.old-999999999-1")       # killed mid-publish, no checkpoints/base
        with pytest.warns(UserWarning, match="restored"): start_run("smoke", "r", tmp_path / "runs", resume=True)
        release_run_lock(rd)
    assert (ck / "base" / "model.safetensors").is_file() and sorted(p.name for p in ck.iterdir()) == ["base"]


def test_torn_run_tokenizer_names_the_file(tmp_path):
    ck = tiny_checkpoint(tmp_path / "ck")
    (ck / "tokenizer.json").write_text((ck / "tokenizer.json").read_text()[:80])
    line = one_line_exit_2(*run_cli("chat", ck, "--prompt", "hi")[::2])
    assert f"{ck / 'tokenizer.json'}: unreadable tokenizer" in line, line


# --- resume after a crash -----------------------------------------------------------------------------------------
def _trainer(tmp_path, max_steps):
    torch.manual_seed(0)
    cfg = TrainConfig(max_steps=max_steps, batch_tokens=4 * 16, micro_batch_size=4, lr=1e-3, warmup_steps=0, eval_every=0,
                      save_every=2, keep_last=3, log_every=1)
    return Trainer(ModernDecoderLM(ModelConfig(**TINY)), cfg, resolve_runtime(HardwareConfig(device="cpu")),
                   train_batches=ToyBatches(300, 16, 4), tokens_per_micro_batch=4 * 16, out_dir=tmp_path / "train",
                   metrics_path=tmp_path / "metrics.jsonl", tensorboard=False)


def test_resume_survives_a_torn_metrics_line_and_a_corrupt_trainer_state(tmp_path):
    _trainer(tmp_path, 4).fit()
    metrics = tmp_path / "metrics.jsonl"
    with open(metrics, "a") as f: f.write('{"step": 5, "loss": 1.2')          # killed during an append
    with pytest.warns(UserWarning, match=r"metrics.jsonl:\d+: dropping a torn last line"): _trainer(tmp_path, 6).fit(resume=True)
    assert [r["step"] for r in read_jsonl(metrics) if "loss" in r] == list(range(1, 7))   # rewritten, torn line gone
    (tmp_path / "train" / "step_000006" / "trainer_state.json").write_text('{"step": 6, "tok')
    with pytest.warns(UserWarning, match=r"step_000006/trainer_state.json: unreadable trainer state"):
        t = _trainer(tmp_path, 8); t.fit(resume=True)
    assert t.step == 8 and latest_checkpoint(tmp_path / "train").name == "step_000008"
    # a bad line that is not the last one is not a torn append: an error naming file:line
    lines = metrics.read_text().splitlines(); lines[1] = "{oops"; metrics.write_text("\n".join(lines) + "\n")
    with pytest.raises(ModernLLMError, match=r"metrics.jsonl:2: not valid JSON"): read_jsonl(metrics)


# --- silent wrong results -----------------------------------------------------------------------------------------
def test_numbers_as_people_write_them():
    rc, out, err = run_cli("preset", "show", "smoke", "--json", "train.pretrain.lr=1e-3", "data.tokens_target=3e4",
                           "train.sft.max_steps=5_000")
    assert rc == 0, err
    p = json.loads(out)["preset"]
    assert (p["train"]["pretrain"]["lr"], p["data"]["tokens_target"], p["train"]["sft"]["max_steps"]) == (1e-3, 30000, 5000)


def test_nan_inf_and_out_of_range_values_are_refused_naming_the_key():
    line = one_line_exit_2(*run_cli("preset", "show", "smoke", "model.rope_theta=.nan", "eval.temperature=.nan",
                                    "train.sft.grad_clip=.nan", "train.pretrain.lr=.inf")[::2])
    for key in ("model.rope_theta: must be a finite number", "eval.temperature: must be a finite number",
                "train.sft.grad_clip: must be a finite number", "train.pretrain.lr: must be a finite number, got inf"):
        assert key in line, (key, line)
    assert "norm_eps must be > 0, got -1.0" in one_line_exit_2(*run_cli("preset", "show", "smoke", "model.norm_eps=-1")[::2])


def test_gsm8k_row_without_answer_line_fails_at_load(tmp_path):
    m = gsm8k_mirror(tmp_path, bad_row={"question": "2+2?", "answer": "it is 4"})
    with pytest.raises(DataError, match=r"gsm8k/train.jsonl.gz:3: no '#### ' answer line"): load_records("gsm8k", "train", m)
    # every consumer reads GSM8K through load_records: SFT, DPO pairs, the verifier and evaluation
    import modern_llm.dpo_data, modern_llm.eval_stage, modern_llm.sft, modern_llm.verifier
    for mod in (modern_llm.sft, modern_llm.dpo_data, modern_llm.eval_stage, modern_llm.verifier):
        assert mod.load_records is load_records, mod.__name__


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    p = load_preset("smoke")
    base = tiny_checkpoint(tmp_path / "B", **{**asdict(p.model), "vocab_size": 300})
    with env(MODERN_LLM_DATA=str(gsm8k_mirror(tmp_path / "mirror"))):
        line = one_line_exit_2(*run_cli("train", "sft", "--preset", "smoke", "--run-dir", tmp_path / "R",
                                        f"base_checkpoint={base}", "model.d_model=128", "data.vocab_size=300")[::2])
    assert "(checkpoint vs preset): model.d_model (64 vs 128)" in line, line
    assert not (tmp_path / "R" / "checkpoints" / "sft").exists()


def test_resume_without_data_env_keeps_provenance(tmp_path):
    m = gsm8k_mirror(tmp_path / "mirror")
    with env(MODERN_LLM_DATA=str(m)):
        rd = start_run("smoke", "r", tmp_path / "runs"); release_run_lock(rd)
    recorded = read_json(rd / "env.json")["data"]
    assert recorded["gsm8k/test"] not in ("", None) and not recorded["gsm8k/test"].startswith(("hub:", "unavailable"))
    env_bytes = (rd / "env.json").read_bytes()
    with env(MODERN_LLM_DATA="hub"):             # a shell without the mirror: nothing ran, nothing may change
        start_run("smoke", "r", tmp_path / "runs", resume=True); release_run_lock(rd)
    assert (rd / "env.json").read_bytes() == env_bytes
    with env(MODERN_LLM_DATA=str(m)):            # a stage that runs records the data it reads
        write_gz(m / "gsm8k" / "test.jsonl.gz", _jsonl([{"question": "3+3?", "answer": "#### 6"}]))
        changed = record_stage_data(rd, load_preset(rd / "preset.yaml"), "evaluate")
    assert set(changed) == {"gsm8k/test"} and read_json(rd / "env.json")["data"]["alpaca/train"] == recorded["alpaca/train"]


def test_cli_and_speedrun_find_the_same_mirror(tmp_path):
    from modern_llm.data import default_mirror, resolve_source
    with env(MODERN_LLM_DATA=None):
        beside = REPO.parent / "shared" / "data"
        assert default_mirror() == (beside.resolve() if beside.is_dir() else None)
        if beside.is_dir(): assert resolve_source("gsm8k") == ("mirror", beside.resolve())
    sh = (REPO / "speedrun.sh").read_text()
    assert "default_mirror" in sh and "claim_run_id" in sh and "../shared/data ]" not in sh


# --- one line, not a traceback ------------------------------------------------------------------------------------
BAD_INPUTS = [   # (what, how it is run, setup(tmp) -> argv); the table in docs/bad_inputs.md is generated from this
    ("a truncated model.safetensors", "modern-llm chat CKPT", lambda t: ["chat", t["ck"]["truncated"], "--prompt", "hi"]),
    ("a pickle saved as model.safetensors", "modern-llm chat CKPT", lambda t: ["chat", t["ck"]["pickle"], "--prompt", "hi"]),
    ("a checkpoint without config.json", "modern-llm chat CKPT", lambda t: ["chat", t["ck"]["no_config"], "--prompt", "hi"]),
    ("an invalid config.json", "modern-llm chat CKPT", lambda t: ["chat", t["ck"]["bad_config"], "--prompt", "hi"]),
    ("an unknown `arch` in config.json", "modern-llm chat CKPT", lambda t: ["chat", t["ck"]["unknown_arch"], "--prompt", "hi"]),
    ("an override whose value is invalid YAML", "modern-llm preset show smoke 'train.pretrain.lr=[1,'",
     lambda t: ["preset", "show", "smoke", "train.pretrain.lr=[1,"]),
    ("NaN, inf and negative numbers", "modern-llm preset show smoke model.rope_theta=.nan eval.temperature=.nan ...",
     lambda t: ["preset", "show", "smoke", "model.rope_theta=.nan", "eval.temperature=.nan", "train.sft.grad_clip=.nan"]),
    ("a negative norm_eps", "modern-llm preset show smoke model.norm_eps=-1", lambda t: ["preset", "show", "smoke", "model.norm_eps=-1"]),
    ("a misspelled key", "modern-llm preset show smoke model.d_modle=64", lambda t: ["preset", "show", "smoke", "model.d_modle=64"]),
    ("`--run-dir` pointing at a file", "modern-llm train pretrain --preset smoke --run-dir FILE",
     lambda t: ["train", "pretrain", "--preset", "smoke", "--run-dir", t["file"]]),
    ("`data pull --mirror` pointing at a file", "modern-llm data pull --preset smoke --mirror FILE --name gsm8k",
     lambda t: ["data", "pull", "--preset", "smoke", "--mirror", t["file"], "--name", "gsm8k"]),
    ("`--run-id ../x`", "modern-llm speedrun smoke --run-id ../x", lambda t: ["speedrun", "smoke", "--run-id", "../x", "--runs-dir", t["tmp"] / "runs"]),
    ("`--resume` with no latest run", "modern-llm speedrun smoke --resume", lambda t: ["speedrun", "smoke", "--resume", "--runs-dir", t["tmp"] / "runs"]),
    ("a base checkpoint of another shape", "modern-llm train sft --run-dir R base_checkpoint=B model.d_model=128",
     lambda t: ["train", "sft", "--preset", "smoke", "--run-dir", t["tmp"] / "R", f"base_checkpoint={t['base']}", "model.d_model=128",
                "data.vocab_size=300"]),
    ("`hardware.device=cuda` without a GPU", "modern-llm train pretrain --preset smoke --run-dir R hardware.device=cuda",
     lambda t: None if torch.cuda.is_available() else ["train", "pretrain", "--preset", "smoke", "--run-dir", t["tmp"] / "R2", "hardware.device=cuda"]),
    ("`modern-llm chat` on a directory with no checkpoint", "modern-llm chat DIR", lambda t: ["chat", t["tmp"] / "empty", "--prompt", "hi"]),
    ("an unknown preset", "modern-llm preset show smoek", lambda t: ["preset", "show", "smoek"]),
    ("a report of a run directory that does not exist", "modern-llm report DIR", lambda t: ["report", t["tmp"] / "nope", "--no-pdf"]),
    ("a temperature that is not a number", "modern-llm chat CKPT --temperature nan",
     lambda t: ["chat", t["ck"]["truncated"], "--prompt", "hi", "--temperature", "nan"]),
    ("`export-hf` onto a file", "modern-llm export-hf CKPT FILE", lambda t: ["export-hf", t["base"], t["file"]]),
    ("a stage name that does not exist", "modern-llm speedrun smoke --stages pretrain,sfx",
     lambda t: ["speedrun", "smoke", "--stages", "pretrain,sfx", "--runs-dir", t["tmp"] / "runs"]),
]


def message_of(fn) -> str:
    "The message a call gives: its user error, else its first warning (what a user reads either way)."
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try: fn()
        except ModernLLMError as e: return f"error: {e}"
    assert w, "no error and no warning"
    return f"warning: {w[0].message}"


def _step_dirs(tmp: Path) -> Path:
    d = tmp / "train"
    m = ModernDecoderLM(ModelConfig(**TINY))
    for s in (2, 4): save_checkpoint(d / f"step_{s:06d}", m, trainer_state={"step": s})
    (d / "step_000004" / "trainer_state.json").write_text('{"step": 4, "tok')
    return d


def _metrics(tmp: Path, text: str) -> Path:
    (tmp / "metrics").mkdir(exist_ok=True); f = tmp / "metrics" / "pretrain.jsonl"; f.write_text(text); return f


def _pull_offline(t):
    import datasets
    real = datasets.load_dataset
    def unreachable(*a, **k): raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)")
    datasets.load_dataset = unreachable
    try: return one_line_exit_2(*run_cli("data", "pull", "--preset", "smoke", "--mirror", t["mirror"], "--name", "gsm8k")[::2])
    finally: datasets.load_dataset = real


def _latest_user_file(tmp: Path):
    (tmp / "runs2").mkdir(); (tmp / "runs2" / "latest").write_text("my notes"); (tmp / "runs2" / "r").mkdir()
    link_latest(tmp / "runs2" / "r")


def _stale_lock(tmp: Path):
    (tmp / "locked").mkdir(); (tmp / "locked" / ".lock").write_text(json.dumps({"pid": 999_999_999, "host": __import__("socket").gethostname()}))
    RunLock(tmp / "locked").acquire().release()


def _corrupt_record(tmp: Path):
    from modern_llm.report import Records
    (tmp / "run" / "results").mkdir(parents=True); (tmp / "run" / "results" / "sft_summary.json").write_text('{"val_loss": 1.')
    rec = Records(tmp / "run"); rec.json("results/sft_summary.json")
    warnings.warn(f"report section note: {rec.missing[0]}")


def _run_in_use(t):
    run = t["tmp"] / "busy"
    with lock_held_by_another_process(run):
        line = one_line_exit_2(*run_cli("train", "pretrain", "--preset", "smoke", "--run-dir", run)[::2])
    return re.sub(r"process \d+ on \S+ \(since .*?: -c\)", "process <pid> on <host> (since <time>: python -c ...)", line)


OTHER_CASES = [   # (what, where, message(t)): data, crash leftovers, records; generated into the same doc
    ("a second process writing a run directory in use", "modern-llm train pretrain --run-dir R (while another writes R)", _run_in_use),
    ("`data pull` with the hub unreachable (the mirror is left as it was)", "modern-llm data pull --preset smoke --mirror M --name gsm8k", _pull_offline),
    ("a GSM8K row without its `#### ` line", "load_records('gsm8k', ...) (SFT, DPO, verifier, evaluate)",
     lambda t: message_of(lambda: load_records("gsm8k", "train", gsm8k_mirror(t["tmp"] / "bad_gsm8k", {"question": "2+2?", "answer": "it is 4"})))),
    ("a torn last line in metrics/<stage>.jsonl (killed during an append)", "--resume (read_jsonl)",
     lambda t: message_of(lambda: read_jsonl(_metrics(t["tmp"], '{"step": 1}\n{"step": 2, "lo')))),
    ("a bad line elsewhere in metrics/<stage>.jsonl", "--resume (read_jsonl)",
     lambda t: message_of(lambda: read_jsonl(_metrics(t["tmp"], '{"step": 1}\n{oops\n{"step": 3}\n')))),
    ("a corrupt trainer_state.json in the newest step", "--resume (latest_checkpoint)", lambda t: message_of(lambda: latest_checkpoint(_step_dirs(t["tmp"])))),
    ("a user's file named `latest` in the runs directory", "speedrun (link_latest)", lambda t: message_of(lambda: _latest_user_file(t["tmp"]))),
    ("a lock left by a killed process", "train / speedrun (RunLock)", lambda t: message_of(lambda: _stale_lock(t["tmp"]))),
    ("one corrupt record in a run", "modern-llm report RUN (Records)", lambda t: message_of(lambda: _corrupt_record(t["tmp"]))),
]


def bad_input_fixtures(tmp: Path) -> dict:
    (tmp / "a_file").write_text("not a directory"); (tmp / "empty").mkdir()
    return {"tmp": tmp, "ck": broken_checkpoints(tmp / "ck"), "file": tmp / "a_file", "mirror": gsm8k_mirror(tmp / "pulled"),
            "base": tiny_checkpoint(tmp / "B", **{**asdict(load_preset("smoke").model), "vocab_size": 300})}


def bad_input_rows(tmp: Path) -> list[tuple[str, str, str]]:
    "(input, command, the one line it gets) for every `BAD_INPUTS` entry that applies here, paths shown relative to `tmp`."
    t, rows = bad_input_fixtures(tmp), []
    with env(MODERN_LLM_DATA=str(gsm8k_mirror(tmp / "mirror"))):
        for what, how, argv in BAD_INPUTS:
            a = argv(t)
            if a is None: continue
            line = one_line_exit_2(*run_cli(*a)[::2])
            rows.append((what, how, line.replace(str(tmp), "<tmp>").replace(str(REPO), "<repo>")))
        for what, how, message in OTHER_CASES:
            rows.append((what, how, message(t).replace(str(tmp), "<tmp>").replace(str(REPO), "<repo>")))
    return rows


def bad_inputs_markdown(rows) -> str:
    esc = lambda s: s.replace("|", "\\|")
    return ("# Bad inputs and the one line each gets\n\n"
            "Generated by `python tests/test_hardening.py` from the real messages (`tests/test_hardening.py` checks it is\n"
            "current). Every error a user can cause is a `modern_llm.errors.ModernLLMError` (or an OS error about a\n"
            "path the user gave): the CLI prints one line and exits 2; `--debug` or `MODERN_LLM_DEBUG=1` shows the traceback.\n"
            "Stage notebooks show the same line (`report_errors_in_notebook`). `<tmp>` is the directory the fixtures were in.\n\n"
            "The last rows are not CLI errors: data and crash leftovers, where the message is the error a call raises or the\n"
            "warning it gives while it recovers.\n\n"
            "| bad input | command | message |\n|---|---|---|\n"
            + "".join(f"| {esc(w)} | `{esc(h)}` | {esc(m)} |\n" for w, h, m in rows))


def test_every_bad_input_gets_one_line_and_the_doc_is_current(tmp_path):
    rows = bad_input_rows(tmp_path)      # each CLI row asserts exit 2, one line, no traceback (one_line_exit_2)
    assert len(rows) >= len(BAD_INPUTS) + len(OTHER_CASES) - 1
    assert all(re.match(r"(modern-llm( [\w-]+)*: error: |error: |warning: )", r[2]) for r in rows), rows
    want = bad_inputs_markdown(rows)
    have = DOC.read_text() if DOC.exists() else ""
    if torch.cuda.is_available():   # the table was generated on a CPU machine: it has the cuda row this one skips
        have = "\n".join(l for l in have.splitlines() if "hardware.device=cuda" not in l) + "\n"
    assert have == want, "docs/bad_inputs.md is stale: run `python tests/test_hardening.py`"


def test_debug_shows_the_traceback():
    with pytest.raises(ModernLLMError, match="did you mean 'd_model'"): main(["--debug", "preset", "show", "smoke", "model.d_modle=64"])
    with env(MODERN_LLM_DEBUG="1"), pytest.raises(ModernLLMError): main(["preset", "show", "smoke", "model.d_modle=64"])


def test_report_marks_a_corrupt_record_unreadable(tmp_path):
    from modern_llm.report import Records
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "sft_summary.json").write_text('{"val_loss": 1.')
    blocks = []
    rec = Records(tmp_path)
    assert rec.json("results/sft_summary.json", blocks) is None
    assert rec.missing[0].startswith("results/sft_summary.json (unreadable: ") and blocks[0].startswith("> unreadable: results/sft_summary.json")


if __name__ == "__main__":   # regenerate docs/bad_inputs.md from the real messages
    import tempfile
    with tempfile.TemporaryDirectory() as d: DOC.write_text(bad_inputs_markdown(bad_input_rows(Path(d).resolve())))
    print(f"wrote {DOC}")


@pytest.mark.parametrize("argv, says", [
    (["bench/train_throughput.py", "--preset", "smoek"], "unknown preset 'smoek'"),
    (["-m", "modern_llm.readme_results", "update", "no/such/record"], "no/such/record: no such record folder"),
    (["bench/ablate.py", "baseline", "runs/no-such-run", "dpo"], "no-such-run: no such run folder"),
])
def test_bench_and_record_scripts_give_one_line_and_exit_2(argv, says):
    "The scripts beside the CLI (benchmarks, the README and docs renderers) keep its rule: one line naming the input, exit 2."
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, (r.returncode, r.stderr)
