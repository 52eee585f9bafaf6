"""lm-evaluation-harness runs on our exported models.

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
