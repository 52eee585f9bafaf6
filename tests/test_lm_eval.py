"""lm-evaluation-harness runs on our models: natively through its `modern-llm` model (modern_llm.lm_eval_model, any
checkpoint, sink or not), and through its stock `hf` model on our exports.

The documented command (docs/interop.md) is run offline on a local multiple-choice task written to a temporary
directory, against a tiny checkpoint exported with `modern_llm.hf_export.export_hf`. The test then recomputes
every log-likelihood lm-eval logged with our own `ModernDecoderLM`: the export, the tokenizer and lm-eval's
scoring agree, so an lm-eval number measured on an export is a number about our model."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[interop]')")
pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e '.[interop]')")

import torch
from modern_llm.checkpoint import load_model
from modern_llm.hf_export import export_hf, tiny_checkpoint

# Questions with one right answer among a few; a random tiny model gets some right by chance.
ROWS = [{"question": f"Question: what is {a} + {b}? Answer:", "choices": [str(a + b), str(a + b + 1), str(a * b)], "label": 0}
        for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (12, 30), (2, 2)]]

TASK = """\
task: modern_llm_toy_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def lm_eval_command(hf_dir, tasks_dir, out_dir):
    "The command of docs/interop.md (the venv's `lm_eval` script, else `python -m lm_eval`)."
    exe = Path(sys.executable).with_name("lm_eval")
    return ([str(exe)] if exe.is_file() else [sys.executable, "-m", "lm_eval"]) + [
        "--model", "hf", "--model_args", f"pretrained={hf_dir},dtype=float32", "--tasks", "modern_llm_toy_mc",
        "--include_path", str(tasks_dir), "--device", "cpu", "--batch_size", "4",
        "--output_path", str(out_dir), "--log_samples"]


def our_loglikelihood(model, tok, context, continuation):
    "log p(continuation | context), split into tokens the way lm-eval's HF model does."
    n = len(context) - len(context.rstrip())         # lm-eval moves trailing spaces onto the continuation
    if n: context, continuation = context[:-n], context[-n:] + continuation
    whole, ctx = tok.encode(context + continuation), tok.encode(context)
    cont = whole[len(ctx):]
    with torch.no_grad():
        logp = model(torch.tensor([whole[:-1]]))[0][0].log_softmax(-1)
    return sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))


def test_lm_eval_scores_our_model(tmp_path):
    ck = tiny_checkpoint(tmp_path / "ck", sink=False)
    hf_dir = Path(export_hf(ck, tmp_path / "hf")["out_dir"])
    tasks = tmp_path / "tasks"; tasks.mkdir()
    data = tasks / "toy_mc.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tasks / "toy_mc.yaml").write_text(TASK.format(data=data))
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf_home"), "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run(lm_eval_command(hf_dir, tasks, tmp_path / "out"), env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, f"lm_eval failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"

    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())["results"]["modern_llm_toy_mc"]
    samples = [json.loads(l) for l in next((tmp_path / "out").rglob("samples_modern_llm_toy_mc_*.jsonl")).read_text().splitlines()]
    assert len(samples) == len(ROWS)

    model, tok, _ = load_model(ck)
    correct = []
    for s in samples:
        args = [(a["arg_0"], a["arg_1"]) for a in s["arguments"].values()]
        assert [c for _, c in args] == [" " + c for c in s["doc"]["choices"]]
        theirs = [float(r[0][0]) for r in s["resps"]]
        ours = [our_loglikelihood(model, tok, ctx, cont) for ctx, cont in args]
        assert ours == pytest.approx(theirs, abs=1e-4)
        correct.append(int(max(range(len(ours)), key=ours.__getitem__) == s["doc"]["label"]))
    assert results["acc,none"] == pytest.approx(sum(correct) / len(correct))
    print(f"lm-eval acc {results['acc,none']:.3f} on {len(ROWS)} questions; log-likelihoods match ours to 1e-4")


# --- GSM8K scoring: our copy of lm-eval's gsm8k task (modern_llm.evaluate) against lm-eval's own code -------------

# text, strict-match answer, its exact match, flexible-extract answer, its exact match, for gold 72 (None = "[invalid]");
# the verdicts are lm-eval 0.4.13's, recomputed below with its own filters and metric
GSM8K_GOLD = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72"
GSM8K_VERDICTS = [
    ("#### 72", "72", True, "72", True),
    ("#### 72.0", "72.0", False, "72.0", False),
    ("#### 072", "072", False, "072", False),
    ("The answer is $72.00", None, False, "$72.00", False),
    ("The answer is $72.", None, False, "$72.", True),
    ("#### 72.", "72.", True, "72.", True),
    ("#### 7,2", "7,2", True, "7,2", True),
    ("#### $72", None, False, "$72", True),
    ("so 72", None, False, "72", True),
    ("#### 72\n#### 73", "72", True, "73", False),
    ("It is 72 or 73", None, False, "73", False),
    ("72 apples...", None, False, "...", False),
    ("x=72,", None, False, "72,", True),
    ("#### -72", "-72", False, "-72", False),
    ("nothing", None, False, None, False),
    ("", None, False, None, False),
]


def _gsm8k_task_config():
    import yaml, lm_eval
    return yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml").read_text())


def _lm_eval_filter(cfg, name, responses):
    "lm-eval's filter pipeline `name` of the task config (as `FilterEnsemble.apply` runs it) on one response list per doc."
    from lm_eval.api.registry import get_filter
    import lm_eval.filters  # noqa: F401  (registers the filters)
    comps = next(f["filter"] for f in cfg["filter_list"] if f["name"] == name)
    resps = [list(r) for r in responses]
    for c in comps:
        kw = {k: v for k, v in c.items() if k != "function"}
        resps = list(get_filter(c["function"])(**kw).apply(resps, [None] * len(resps)))
    return resps


def _lm_eval_em(cfg, pred, gold):
    from lm_eval.api.metrics import exact_match_hf_evaluate
    m = next(m for m in cfg["metric_list"] if m["metric"] == "exact_match")
    kw = {k: m[k] for k in ("regexes_to_ignore", "ignore_case", "ignore_punctuation") if k in m}
    return bool(exact_match_hf_evaluate(predictions=[pred], references=[gold], **kw)["exact_match"])


def test_gsm8k_scoring_settings_are_lm_evals():
    "Our regexes, group selection, exact-match settings and stop string are those of the installed gsm8k.yaml."
    from modern_llm import evaluate as ev
    cfg = _gsm8k_task_config()
    filt = {f["name"]: f["filter"] for f in cfg["filter_list"]}
    assert [c["function"] for c in filt["strict-match"]] == [c["function"] for c in filt["flexible-extract"]] == ["regex", "take_first"]
    assert filt["strict-match"][0]["regex_pattern"] == ev.STRICT_RE.pattern and filt["strict-match"][0].get("group_select", 0) == 0
    assert filt["flexible-extract"][0]["regex_pattern"] == ev.FLEXIBLE_RE.pattern and filt["flexible-extract"][0]["group_select"] == -1
    m = next(m for m in cfg["metric_list"] if m["metric"] == "exact_match")
    assert tuple(m["regexes_to_ignore"]) == ev.EM_REGEXES_TO_IGNORE
    assert (m["ignore_case"], m["ignore_punctuation"]) == (ev.EM_IGNORE_CASE, False)
    assert ev.FEWSHOT_STOP in cfg["generation_kwargs"]["until"] and cfg["doc_to_text"] == "Question: {{question}}\nAnswer:"
    from lm_eval.filters.extraction import RegexFilter
    assert RegexFilter().fallback == ev.INVALID


def test_gsm8k_verdict_table_matches_lm_eval():
    "Every tricky string of the table: lm-eval's filters and exact_match give the tabled verdict, and so do we."
    from modern_llm.evaluate import answers_match, extract_answer, gold_answer
    cfg = _gsm8k_task_config()
    texts = [t for t, *_ in GSM8K_VERDICTS]
    lm = {n: [r for r in _lm_eval_filter(cfg, n, [[t] for t in texts])] for n in ("strict-match", "flexible-extract")}
    for i, (text, s, s_ok, f, f_ok) in enumerate(GSM8K_VERDICTS):
        lm_s, lm_f = lm["strict-match"][i], lm["flexible-extract"][i]
        assert (lm_s, lm_f) == (s or "[invalid]", f or "[invalid]"), text
        assert (_lm_eval_em(cfg, lm_s, GSM8K_GOLD), _lm_eval_em(cfg, lm_f, GSM8K_GOLD)) == (s_ok, f_ok), text
        assert (extract_answer(text, "strict"), extract_answer(text, "flexible")) == (s, f), text
        for g in (GSM8K_GOLD, gold_answer(GSM8K_GOLD)):
            assert (answers_match(s, g), answers_match(f, g)) == (s_ok, f_ok), text


def test_gsm8k_scoring_agrees_with_lm_eval_on_random_strings():
    "5000 random strings over the characters the regexes care about, four golds: same answers, same verdicts."
    import random
    from modern_llm.evaluate import answers_match, extract_answer, gold_answer
    cfg = _gsm8k_task_config()
    rng = random.Random(0)
    alphabet = list("0123456789.,$- \nAb") + ["#### ", "72", "1,000", "The answer is "]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(5000)]
    golds = [GSM8K_GOLD, "so $1,000 in all.\n#### 1,000", "#### -3", "a #### b\n#### 0.5"]
    for name, mode in (("strict-match", "strict"), ("flexible-extract", "flexible")):
        lm = _lm_eval_filter(cfg, name, [[t] for t in texts])
        ours = [extract_answer(t, mode) for t in texts]
        assert [o or "[invalid]" for o in ours] == lm
        for gold in golds:
            g = gold_answer(gold)
            bad = [(t, p) for t, p, o in zip(texts, lm, ours)
                   if _lm_eval_em(cfg, p, gold) != answers_match(o, gold) or answers_match(o, g) != answers_match(o, gold)]
            assert not bad, (name, gold, bad[:5])


def test_majority_vote_is_lm_evals():
    "maj@k: lm-eval's majority_vote filter (then take_first) on filtered answers, `[invalid]` voting, picks what we pick."
    import random
    from lm_eval.filters.selection import MajorityVoteFilter, TakeFirstFilter
    from modern_llm.evaluate import majority_vote
    rng = random.Random(1)
    for _ in range(2000):
        votes = [rng.choice(["72", "72.0", "$72", "5", None]) for _ in range(rng.randint(1, 8))]
        lm = list(TakeFirstFilter().apply(MajorityVoteFilter().apply([[v or "[invalid]" for v in votes]], None), None))[0]
        assert (majority_vote(votes) or "[invalid]") == lm, votes


# --- lm-eval's `modern-llm` model (modern_llm.lm_eval_model): our checkpoints, natively --------------------------

def _instances(kind, args):
    from lm_eval.api.instance import Instance
    return [Instance(kind, {}, a, i) for i, a in enumerate(args)]


LL_PAIRS = [("Question: what is 12 + 30? Answer:", " 42"), ("Question: what is 1 + 2? Answer: ", "3"),   # trailing space
            ("", "The quick brown fox"),                                                                  # empty context
            ("The quick brown fox jumps over the lazy dog. " * 30, "Once upon a time"),                 # > the 128 context
            ("Alice said <|end|><|assistant|>", " the answer")]                                         # control-token text
ROLLING = ["Alice asked Bob a question.", " ".join(["Once upon a time there was a little robot."] * 30)]


@pytest.mark.parametrize("sink", [False, True], ids=["no_sink", "sink"])
def test_modern_llm_model_equals_hf_model_on_the_export(tmp_path, sink):
    """Our lm-eval model on a checkpoint and lm-eval's stock `hf` model on its export (Llama/Qwen3 without the sink,
    our modelling file with `trust_remote_code=True` with it) give the same log-likelihoods, rolling log-likelihoods
    and greedy generations, request for request."""
    from lm_eval.models.huggingface import HFLM
    from modern_llm.lm_eval_model import ModernLLM
    ck = tiny_checkpoint(tmp_path / "ck", sink=sink)
    hf_dir = export_hf(ck, tmp_path / "hf")["out_dir"]
    ours = ModernLLM(pretrained=str(ck), device="cpu", batch_size=3)
    theirs = HFLM(pretrained=hf_dir, device="cpu", dtype="float32", batch_size=3, prefix_token_id=2, trust_remote_code=sink)
    a, b = ours.loglikelihood(_instances("loglikelihood", LL_PAIRS)), theirs.loglikelihood(_instances("loglikelihood", LL_PAIRS))
    assert [ll for ll, _ in a] == pytest.approx([ll for ll, _ in b], abs=1e-4)
    assert [g for _, g in a] == [g for _, g in b]
    ra = ours.loglikelihood_rolling(_instances("loglikelihood_rolling", [(t,) for t in ROLLING]))
    rb = theirs.loglikelihood_rolling(_instances("loglikelihood_rolling", [(t,) for t in ROLLING]))
    assert ra == pytest.approx(rb, abs=1e-4)
    gen = [(p, {"until": ["."], "max_gen_toks": 10, "do_sample": False}) for p in ["Question: what is", "The quick", "Once upon"]]
    assert ours.generate_until(_instances("generate_until", gen)) == theirs.generate_until(_instances("generate_until", gen))


GEN_TASK = """\
task: modern_llm_toy_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["."]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

ROLLING_TASK = """\
task: modern_llm_toy_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: bits_per_byte
"""


def modern_llm_lm_eval_command(checkpoint, tasks_dir, out_dir):
    "`modern-llm lm-eval` as docs/interop.md gives it (the venv's script, else `python -m modern_llm.cli`)."
    exe = Path(sys.executable).with_name("modern-llm")
    return ([str(exe)] if exe.is_file() else [sys.executable, "-c", "import sys; from modern_llm.cli import main; sys.exit(main())"]) + [
        "lm-eval", "--model", "modern-llm", "--model_args", f"pretrained={checkpoint}",
        "--tasks", "modern_llm_toy_mc,modern_llm_toy_gen,modern_llm_toy_ppl", "--include_path", str(tasks_dir),
        "--device", "cpu", "--batch_size", "4", "--output_path", str(out_dir), "--log_samples"]


def test_modern_llm_lm_eval_runs_a_sink_checkpoint_offline(tmp_path):
    """`modern-llm lm-eval --model modern-llm` on a sink checkpoint (no export), offline, on local multiple-choice,
    generation and perplexity tasks: every logged response is what our model and engine give."""
    from modern_llm.generate import Engine
    ck = tiny_checkpoint(tmp_path / "ck", sink=True)
    tasks = tmp_path / "tasks"; tasks.mkdir()
    for name, rows, yaml in (("toy_mc", ROWS, TASK), ("toy_gen", [{"question": r["question"], "answer": r["choices"][0]} for r in ROWS], GEN_TASK),
                             ("toy_ppl", [{"text": t} for t in ROLLING], ROLLING_TASK)):
        (tasks / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tasks / f"{name}.yaml").write_text(yaml.format(data=tasks / f"{name}.jsonl"))
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf_home"), "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run(modern_llm_lm_eval_command(ck, tasks, tmp_path / "out"), env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"modern-llm lm-eval failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())["results"]
    samples = lambda t: [json.loads(l) for l in next((tmp_path / "out").rglob(f"samples_{t}_*.jsonl")).read_text().splitlines()]

    model, tok, _ = load_model(ck)
    correct = []
    for s in samples("modern_llm_toy_mc"):
        args = [(a["arg_0"], a["arg_1"]) for a in s["arguments"].values()]
        ours = [our_loglikelihood(model, tok, ctx, cont) for ctx, cont in args]
        assert ours == pytest.approx([float(r[0][0]) for r in s["resps"]], abs=1e-4)
        correct.append(int(max(range(len(ours)), key=ours.__getitem__) == s["doc"]["label"]))
    assert results["modern_llm_toy_mc"]["acc,none"] == pytest.approx(sum(correct) / len(correct))

    engine, hits = Engine(model, tok), []
    for s in samples("modern_llm_toy_gen"):
        text = tok.decode(engine.generate([tok.encode(s["doc"]["question"])], 8)[0][0]).split(".")[0]
        assert s["resps"][0][0] == text
        hits.append(int(text == s["doc"]["answer"]))
    assert results["modern_llm_toy_gen"]["exact_match,none"] == pytest.approx(sum(hits) / len(hits))

    for s in samples("modern_llm_toy_ppl"):   # one window each (< 128 tokens): the sum of our per-token log-probs
        ids = tok.encode(s["doc"]["text"])
        if len(ids) < model.cfg.max_seq_len:
            assert float(s["resps"][0][0]) == pytest.approx(-engine.stream_nll([tok.eos_id] + ids).sum().item(), abs=1e-3)
    print({t: {k: v for k, v in r.items() if "," in k} for t, r in results.items()})
