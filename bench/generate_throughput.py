"""Batched sampling throughput: modern_llm's Engine vs Hugging Face `generate()` on a same-shaped random Llama.

Both models get the same shape (layers, width, heads, SwiGLU width, vocabulary, tied embeddings), random weights,
the same prompts (random tokens) and the same work: `--prompts` prompts x `--samples` samples, `--new-tokens` new
tokens each (no early stop), top-k sampling. Each side is warmed up with one full call before the timed calls.
Our engine prefills each prompt once and repeats its cache rows; `generate(num_return_sequences=N)` prefills every
row. Reports new tokens per second (rows x new tokens / wall time) and writes JSON.

    python bench/generate_throughput.py --out bench/results/generate_h100.json            # defaults: the H100 setting
    python bench/generate_throughput.py --prompts 2 --samples 4 --prompt-len 32 --new-tokens 32 \\
        --d-model 128 --layers 2 --heads 4 --vocab 4096 --out bench/results/generate_cpu_tiny.json   # a CPU smoke
"""
import argparse, json, platform, time
from pathlib import Path
from types import SimpleNamespace
import torch
from modern_llm.config import ModelConfig
from modern_llm.model import ModernDecoderLM, num_params
from modern_llm.generate import Engine


def sync(device):
    if device.startswith("cuda"): torch.cuda.synchronize()


def timed(fn, device, repeats):
    "Best wall time of `repeats` calls after one warm-up call."
    fn(); sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter(); fn(); sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--top-k", type=int, default=50)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=0, help="0: same as --heads")
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    dev = a.device
    dtype = torch.bfloat16 if dev.startswith("cuda") else torch.float32
    ctx = a.prompt_len + a.new_tokens
    cfg = ModelConfig(vocab_size=a.vocab, d_model=a.d_model, n_layers=a.layers, n_heads=a.heads,
                      n_kv_heads=a.kv_heads or a.heads, max_seq_len=ctx, qk_norm=False, sink=False, tie_embeddings=True)
    torch.manual_seed(0)
    prompts = torch.randint(10, a.vocab, (a.prompts, a.prompt_len))
    rows, res = a.prompts * a.samples, {}
    tokens = rows * a.new_tokens

    model = ModernDecoderLM(cfg).to(dev, dtype).eval()
    tok = SimpleNamespace(pad_id=0, eos_id=2, end_id=6)   # the engine needs only these ids here (no stop strings)
    eng = Engine(model, tok)
    run = lambda: eng.generate(prompts.tolist(), a.new_tokens, temperature=1.0, top_k=a.top_k, n_samples=a.samples,
                               seed=0, stop_ids=[])
    out = run()
    assert all(len(s) == a.new_tokens for p in out for s in p)
    t = timed(run, dev, a.repeats)
    res["modern_llm_engine"] = {"seconds": t, "new_tokens_per_s": tokens / t}
    del model, eng
    if dev.startswith("cuda"): torch.cuda.empty_cache()

    if not a.skip_hf:
        import transformers
        from transformers import LlamaConfig, LlamaForCausalLM
        hcfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.d_model, intermediate_size=cfg.ffn_dim, num_hidden_layers=a.layers,
                           num_attention_heads=a.heads, num_key_value_heads=a.kv_heads or a.heads, max_position_embeddings=ctx,
                           tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
        hf = LlamaForCausalLM(hcfg).to(dev, dtype).eval()
        ids, att = prompts.to(dev), torch.ones_like(prompts).to(dev)
        for impl in ("dynamic", "static"):
            kw = dict(do_sample=True, top_k=a.top_k, top_p=1.0, temperature=1.0, max_new_tokens=a.new_tokens,
                      min_new_tokens=a.new_tokens, num_return_sequences=a.samples, pad_token_id=0)
            if impl == "static": kw["cache_implementation"] = "static"
            def run_hf():
                with torch.inference_mode(): return hf.generate(input_ids=ids, attention_mask=att, **kw)
            try:
                assert run_hf().shape == (rows, a.prompt_len + a.new_tokens)
                t = timed(run_hf, dev, a.repeats)
                res[f"hf_generate_{impl}"] = {"seconds": t, "new_tokens_per_s": tokens / t}
            except Exception as e:  # record, do not hide, a cache implementation that fails here
                res[f"hf_generate_{impl}"] = {"error": f"{type(e).__name__}: {e}"[:300]}
        res["transformers"] = transformers.__version__
    ours = res["modern_llm_engine"]["new_tokens_per_s"]
    for k, v in list(res.items()):
        if k.startswith("hf_") and "new_tokens_per_s" in v: v["engine_speedup"] = ours / v["new_tokens_per_s"]
    info = {"device": torch.cuda.get_device_name(0) if dev.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)",
            "dtype": str(dtype).replace("torch.", ""), "torch": torch.__version__, "host": platform.node(),
            "params_m": round(num_params(cfg) / 1e6, 1), "rows": rows, "new_tokens_total": tokens,
            "args": vars(a), "results": res, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    print(json.dumps(info, indent=1))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(info, indent=1) + "\n")
    return info


if __name__ == "__main__":
    main()
