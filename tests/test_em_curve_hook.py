"""The GSM8K EM-curve hook (issue "Analysis"): it runs at its steps, logs EM with the training metrics, and adds
nothing to training but its own evaluation work: the training losses with and without it are bit-identical, and
the trainer's throughput clock (`train_s`) excludes it."""
import time
import torch
from modern_llm.config import EvalConfig, HardwareConfig, ModelConfig, TrainConfig
from modern_llm.runtime import resolve_runtime
from modern_llm.model import ModernDecoderLM
from modern_llm.runs import read_jsonl
from modern_llm.sft import gsm8k_em_hook
from modern_llm.tokenizer import train_tokenizer
from modern_llm.trainer import ToyBatches, Trainer

ROWS = [{"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
         "answer": f"Tom has {a}+{b}=<<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"} for a, b in [(2, 3), (5, 7), (10, 4)]]

def _run(tmp, tok, hooks):
    torch.manual_seed(0)
    model = ModernDecoderLM(ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64))
    cfg = TrainConfig(max_steps=6, batch_tokens=4 * 32, micro_batch_size=4, lr=1e-2, warmup_steps=1, eval_every=0, log_every=1)
    rt = resolve_runtime(HardwareConfig(device="cpu", mixed_precision="fp32"))
    tr = Trainer(model, cfg, rt, train_batches=ToyBatches(tok.vocab_size, 32, 4), tokens_per_micro_batch=4 * 32,
                 out_dir=tmp / "train", metrics_path=tmp / "m.jsonl", hooks=hooks, tensorboard=False)
    t0 = time.perf_counter(); out = tr.fit(); wall = time.perf_counter() - t0
    return out, read_jsonl(tmp / "m.jsonl"), wall

def test_em_hook_logs_at_its_steps_and_leaves_training_unchanged(tmp_path):
    tok = train_tokenizer([r["question"] + r["answer"] for r in ROWS] * 20, vocab_size=300)
    spent = []
    hook = gsm8k_em_hook(tok, ROWS, EvalConfig(max_new_tokens=16, batch_size=4))
    def timed(model, step):
        t = time.perf_counter(); r = hook(model, step); spent.append(time.perf_counter() - t); return r
    (tmp_path / "a").mkdir(); (tmp_path / "b").mkdir()
    out_a, rows_a, wall_a = _run(tmp_path / "a", tok, [])
    out_b, rows_b, wall_b = _run(tmp_path / "b", tok, [(2, timed)])
    loss = lambda rows: [r["loss"] for r in rows if "loss" in r]
    assert loss(rows_a) == loss(rows_b)                                     # bit-identical training
    assert [r["step"] for r in rows_b if "gsm8k_em" in r] == [2, 4, 6]
    assert all(0.0 <= r["gsm8k_em"] <= 1.0 for r in rows_b if "gsm8k_em" in r)
    assert out_b["wall_s"] - out_b["train_s"] >= sum(spent) * 0.99           # the hook's time is outside the throughput clock
    print(f"hook: {len(spent)} calls, {sum(spent):.2f}s; wall {wall_a:.2f}s without, {wall_b:.2f}s with")
