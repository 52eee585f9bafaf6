"""Batched sampling throughput: modern_llm's Engine vs Hugging Face `generate()` on a same-shaped random Llama.

Both models get the same shape (layers, width, heads, SwiGLU width, vocabulary, tied embeddings), random weights,
the same prompts (random tokens) and the same work: `--prompts` prompts x `--samples` samples, `--new-tokens` new
tokens each (no early stop), top-k sampling at temperature 1. Every engine is warmed up with one full call (which
also compiles, where it compiles) before the timed calls; the best of `--repeats` timed calls is reported.
Our engine prefills each prompt once and repeats its cache rows; `generate(num_return_sequences=N)` prefills every
row. Reports new tokens per second (rows x new tokens / wall time) and writes JSON (atomically) to `--out`, rewritten
after every engine, so a run killed at a time cap keeps what it measured.

Our engine's modes (`--modes`): `default` is what `Engine(model, tok)` does on the device (on CUDA: the static
decode step captured in a CUDA graph), `eager` the same step without a graph, `compiled` the step compiled with
`torch.compile` and then captured; a mode with `+sink` (e.g. `default+sink`) runs on the same shape with the learnable
attention sink on, the presets' setting (held in the static cache's slot 0, so no step copies the cache). HF's cache
implementations (`--hf`): `static` (the issue-22 reference) and `dynamic`. Our engines run first, then HF's.

    python bench/generate_throughput.py --out generate.json     # the issue-22 setting: 16 prompts x 16 samples,
        # 128-token prompts, 256 new tokens, top-k 50, bf16, Llama-shaped 124M (12 layers, d 768, MHA, vocab 50304)
    python bench/generate_throughput.py --dry-run --out generate.json   # tiny shapes on the CPU, every path, seconds
"""
import argparse, dataclasses, json, platform, sys, time
from pathlib import Path
from types import SimpleNamespace
import torch
from modern_llm.config import ModelConfig
from modern_llm.model import ModernDecoderLM, num_params
from modern_llm.generate import Engine
from modern_llm.runs import write_json

TARGET_NEW_TOKENS_PER_S = 190_000   # issue 22, on one H100/H200 at the default shape
DRY = dict(device="cpu", prompts=2, samples=2, prompt_len=8, new_tokens=8, d_model=64, layers=2, heads=4, vocab=512, repeats=1)


def sync(device):
    if device.startswith("cuda"): torch.cuda.synchronize()


def timed(fn, device, repeats):
    "(seconds of the warm-up call, best wall time of `repeats` calls after it)."
    t = time.perf_counter(); fn(); sync(device)
    warm, best = time.perf_counter() - t, float("inf")
    for _ in range(repeats):
        t = time.perf_counter(); fn(); sync(device)
        best = min(best, time.perf_counter() - t)
    return warm, best


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="", help="write the JSON here (atomically)")
    ap.add_argument("--dry-run", "--tiny", action="store_true", help="tiny shapes on the CPU (seconds): " + json.dumps(DRY))
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--top-k", type=int, default=50)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=0, help="0: same as --heads")
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--sink", action="store_true", help="our model with the learnable sink (default off, like Llama)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--modes", default="", help="our engine's modes, comma-separated from default,eager,compiled, each "
                                                "optionally with +sink (default: default,compiled on CUDA, default elsewhere)")
    ap.add_argument("--hf", default="static", help="HF cache implementations, comma-separated from static,dynamic; '' for none")
    ap.add_argument("--skip-hf", action="store_true", help="same as --hf ''")
    a = ap.parse_args(argv)
    if a.dry_run: vars(a).update(DRY)
    if a.skip_hf: a.hf = ""
    if not a.modes: a.modes = "default,compiled" if a.device.startswith("cuda") else "default"
    bad = [m for m in a.modes.split(",") if m.removesuffix("+sink") not in ("default", "eager", "compiled")] + \
          [h for h in filter(None, a.hf.split(",")) if h not in ("static", "dynamic")]
    if bad: ap.error(f"unknown mode or cache implementation: {bad}")
    return a


def report(a, cfg, dtype, res):
    "The JSON record of what was measured so far (`res`: results by engine)."
    dev, rows = a.device, a.prompts * a.samples
    ours = max((v["new_tokens_per_s"] for k, v in res.items() if k.startswith("modern_llm") and "new_tokens_per_s" in v), default=None)
    for k, v in res.items():
        if k.startswith("hf_") and "new_tokens_per_s" in v and ours: v["best_engine_speedup"] = ours / v["new_tokens_per_s"]
    return {"device": torch.cuda.get_device_name(0) if dev.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)",
            "dtype": str(dtype).replace("torch.", ""), "torch": torch.__version__, "host": platform.node(), "dry_run": a.dry_run,
            "params_m": round(num_params(cfg) / 1e6, 1), "rows": rows, "new_tokens_total": rows * a.new_tokens,
            "target_new_tokens_per_s": TARGET_NEW_TOKENS_PER_S, "best_engine_new_tokens_per_s": ours,
            "meets_target": None if a.dry_run or ours is None else ours >= TARGET_NEW_TOKENS_PER_S,
            "args": vars(a), "results": res, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def main(argv=None):
    a = parse(argv)
    dev = a.device
    dtype = torch.bfloat16 if dev.startswith("cuda") else torch.float32
    ctx = a.prompt_len + a.new_tokens
    cfg = ModelConfig(vocab_size=a.vocab, d_model=a.d_model, n_layers=a.layers, n_heads=a.heads,
                      n_kv_heads=a.kv_heads or a.heads, max_seq_len=ctx, qk_norm=False, sink=a.sink, tie_embeddings=True)
    torch.manual_seed(0)
    prompts = torch.randint(10, a.vocab, (a.prompts, a.prompt_len))
    rows, res = a.prompts * a.samples, {}
    tokens = rows * a.new_tokens
    def record(key, value):
        res[key] = value
        print(f"{key}: {value}", flush=True)
        if a.out: write_json(Path(a.out), report(a, cfg, dtype, res))

    models = {}   # by sink on/off: one model per setting, shared by the modes
    tok = SimpleNamespace(pad_id=0, eos_id=2, end_id=6)   # the engine needs only these ids here (no stop strings)
    for spec in a.modes.split(","):
        mode, sink = spec.removesuffix("+sink"), spec.endswith("+sink") or a.sink
        key = "modern_llm_engine" + ("" if mode == "default" else "_" + mode) + ("_sink" if spec.endswith("+sink") else "")
        try:
            if sink not in models:
                torch.manual_seed(0)
                models[sink] = ModernDecoderLM(dataclasses.replace(cfg, sink=sink)).to(dev, dtype).eval()
            model = models[sink]
            eng = Engine(model, tok, cuda_graphs=False if mode == "eager" else None, compile=mode == "compiled")
            run = lambda: eng.generate(prompts.tolist(), a.new_tokens, temperature=1.0, top_k=a.top_k, n_samples=a.samples,
                                       seed=0, stop_ids=[])
            out = []
            warm, t = timed(lambda: out.append(run()), dev, a.repeats)
            assert all(len(s) == a.new_tokens for p in out[-1] for s in p) and len(out[-1]) == a.prompts
            record(key, {"seconds": t, "new_tokens_per_s": tokens / t, "warmup_s": warm, "sink": sink,
                         "cuda_graphs": eng.cuda_graphs, "compiled": mode == "compiled"})
            del eng   # its kept CUDA graphs and caches go with it
        except Exception as e:  # record, do not hide, a mode that fails here; the other modes still run
            record(key, {"error": f"{type(e).__name__}: {e}"[:500]})
    models.clear()
    if dev.startswith("cuda"): torch.cuda.empty_cache()
    if a.hf: hf_generate(a, cfg, dtype, prompts, record)
    info = report(a, cfg, dtype, res)
    print(json.dumps(info, indent=1))
    if a.out: write_json(Path(a.out), info)
    failed = [k for k, v in res.items() if isinstance(v, dict) and "error" in v]
    return info, failed


def hf_generate(a, cfg, dtype, prompts, record):
    "Time HF `generate()` on a same-shaped random Llama, one entry per cache implementation in `a.hf`, via `record`."
    try:
        import transformers
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as e:  # a bare GPU image may lack it: say so, keep our numbers
        return record("hf_generate", {"error": f"transformers is not installed: {e}"[:500]})
    dev, rows, ctx = a.device, a.prompts * a.samples, a.prompt_len + a.new_tokens
    hcfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.d_model, intermediate_size=cfg.ffn_dim, num_hidden_layers=a.layers,
                       num_attention_heads=a.heads, num_key_value_heads=a.kv_heads or a.heads, max_position_embeddings=ctx,
                       tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    hf = LlamaForCausalLM(hcfg).to(dev, dtype).eval()
    ids, att = prompts.to(dev), torch.ones_like(prompts).to(dev)
    for impl in a.hf.split(","):
        kw = dict(do_sample=True, top_k=a.top_k, top_p=1.0, temperature=1.0, max_new_tokens=a.new_tokens,
                  min_new_tokens=a.new_tokens, num_return_sequences=a.samples, pad_token_id=0)
        if impl == "static": kw["cache_implementation"] = "static"
        def run_hf():
            with torch.inference_mode(): return hf.generate(input_ids=ids, attention_mask=att, **kw)
        try:
            shapes = []
            warm, t = timed(lambda: shapes.append(run_hf().shape), dev, a.repeats)
            assert shapes[-1] == (rows, ctx), shapes[-1]
            record(f"hf_generate_{impl}", {"seconds": t, "new_tokens_per_s": rows * a.new_tokens / t, "warmup_s": warm,
                                           "transformers": transformers.__version__})
        except Exception as e:  # record, do not hide, a cache implementation that fails here
            record(f"hf_generate_{impl}", {"error": f"{type(e).__name__}: {e}"[:500]})


if __name__ == "__main__":
    info, failed = main()
    sys.exit(1 if failed else 0)
