"""CUDA paths: bf16 autocast, torch.compile, fused AdamW, flash SDPA, the engine on a GPU.

Skipped without CUDA (CI has none); run them on a GPU machine with `pytest tests/test_gpu.py`."""
import pytest, torch
from modern_llm.config import HardwareConfig, ModelConfig, TrainConfig
from modern_llm.runtime import resolve_runtime
from modern_llm.model import KVCache, ModernDecoderLM
from modern_llm.trainer import ToyBatches, Trainer

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (no GPU on this machine)")]

def tiny(**kw):
    return ModelConfig(**{**dict(vocab_size=256, d_model=128, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64), **kw})

@pytest.mark.parametrize("compile_", [False, True])
@pytest.mark.parametrize("sink", [False, True])
def test_bf16_training_loss_falls(tmp_path, compile_, sink):
    torch.manual_seed(0)
    rt = resolve_runtime(HardwareConfig(device="cuda", mixed_precision="auto", compile=compile_))
    assert rt.dtype in ("bf16", "fp16")
    model = ModernDecoderLM(tiny(sink=sink))
    cfg = TrainConfig(max_steps=60, batch_tokens=16 * 64, micro_batch_size=16, lr=3e-3, warmup_steps=5, eval_every=0, log_every=10)
    tr = Trainer(model, cfg, rt, train_batches=ToyBatches(256, 64, 16), tokens_per_micro_batch=16 * 64, out_dir=tmp_path,
                 hw=HardwareConfig(device="cuda", compile=compile_), tensorboard=False)
    first = tr.train_step()["loss"]
    out = tr.fit()
    assert out["loss"] < first * 0.5, (first, out["loss"])
    if torch.cuda.get_device_capability()[0] >= 8: assert rt.dtype == "bf16"

def test_flash_sdpa_matches_math_for_the_causal_path():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    torch.manual_seed(0)
    m = ModernDecoderLM(tiny(sink=False)).cuda().to(torch.bfloat16).eval()
    x = torch.randint(0, 256, (4, 64), device="cuda")
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION): flash = m(x)[0].float()
    with sdpa_kernel(SDPBackend.MATH): ref = m(x)[0].float()
    assert (flash - ref).abs().max() < 5e-2

def test_kv_cache_decoding_on_gpu_matches_full_forward():
    torch.manual_seed(0)
    m = ModernDecoderLM(tiny()).cuda().eval()
    x = torch.randint(0, 256, (2, 24), device="cuda")
    cache = KVCache(m.cfg, 2, 32, device="cuda")
    steps = [m(x[:, :8], cache=cache)[0]] + [m(x[:, t:t + 1], cache=cache)[0] for t in range(8, 24)]
    assert (torch.cat(steps, 1) - m(x)[0]).abs().max() < 1e-3


# ---- issue 22: the mask-free sink, FlexAttention for packed rows, the chunked loss, fused AdamW, Muon, DDP, autobatch

def _attention_kernels(m, x, **kw):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        m(x, x, **kw)[1].backward()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
            m(x, x, **kw)[1].backward(); torch.cuda.synchronize()
    return " ".join(e.name for e in prof.events()).lower()

@pytest.mark.parametrize("sink", [True, False])
def test_training_attention_runs_a_fused_causal_kernel(sink):
    "With or without the sink, the unpacked training forward gets FlashAttention or cuDNN (no mask rules them out)."
    torch.manual_seed(0)
    m = ModernDecoderLM(tiny(sink=sink, d_model=768, n_heads=12, n_kv_heads=12, max_seq_len=1024)).cuda()
    names = _attention_kernels(m, torch.randint(0, 256, (4, 1024), device="cuda"))   # aten ops and CUDA kernels
    assert "flash" in names or "cudnn" in names, names[:2000]
    assert "_scaled_dot_product_efficient_attention" not in names and "_scaled_dot_product_attention_math" not in names

def _reference_logits(m, idx, positions, segment_ids):
    "The explicit-mask forward (the CPU fallback) for packed rows."
    from modern_llm.model import rope_angles
    T = idx.shape[1]
    rows = torch.arange(T, device=idx.device).expand_as(idx)
    mask = m._mask(rows, rows, segment_ids, segment_ids)
    cos, sin = rope_angles(positions, m.cfg.head_dim, m.cfg.rope_theta)
    x = m.embed(idx)
    for blk in m.blocks: x, _ = blk(x, (cos, sin), mask)
    return m.lm_head(m.norm(x))

@pytest.mark.parametrize("sink", [True, False])
def test_packed_rows_use_flex_attention_and_match_the_dense_mask(sink, monkeypatch):
    import torch.nn.functional as F
    import modern_llm.model as model_mod
    made = []
    real = model_mod.document_block_mask
    monkeypatch.setattr(model_mod, "document_block_mask", lambda *a: made.append(a) or real(*a))
    torch.manual_seed(0)
    m = ModernDecoderLM(tiny(sink=sink, max_seq_len=256)).cuda()
    with torch.no_grad():
        for b in m.blocks:
            if sink: b.attn.sink_k.normal_(); b.attn.sink_v.normal_()
    T = 256
    seg = torch.tensor([[0] * 100 + [1] * 156, [0] * 30 + [1] * 200 + [2] * 26], device="cuda")
    pos = torch.stack([torch.cat([torch.arange(n, device="cuda") for n in (100, 156)]),
                       torch.cat([torch.arange(n, device="cuda") for n in (30, 200, 26)])])
    x, y = torch.randint(0, 256, (2, T), device="cuda"), torch.randint(0, 256, (2, T), device="cuda")
    logits = m(x, positions=pos, segment_ids=seg)[0]
    ref = _reference_logits(m, x, pos, seg)
    assert made, "packed rows on CUDA should build a FlexAttention BlockMask"
    assert (logits - ref).abs().max() < 1e-3
    m.zero_grad(); m(x, y, positions=pos, segment_ids=seg)[1].backward()
    got = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad(); F.cross_entropy(ref.float().flatten(0, 1), y.flatten()).backward()
    for n, p in m.named_parameters(): assert (got[n] - p.grad).abs().max() < 1e-3, n

def test_chunked_loss_under_bf16_autocast_matches_the_full_logits():
    import torch.nn.functional as F
    from modern_llm.model import linear_cross_entropy
    torch.manual_seed(0)
    h = torch.randn(4096, 256, device="cuda", requires_grad=True)
    w = (torch.randn(8192, 256, device="cuda") * 0.05).requires_grad_()
    t = torch.randint(0, 8192, (4096,), device="cuda"); t[:100] = -100
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ref = F.cross_entropy(F.linear(h, w).float(), t, ignore_index=-100)
    ref.backward(); gh, gw = h.grad.clone(), w.grad.clone(); h.grad = w.grad = None
    with torch.autocast("cuda", dtype=torch.bfloat16): out = linear_cross_entropy(h, w, t)
    out.backward()
    assert abs(out.item() - ref.item()) < 1e-2 * ref.item()
    for a, b in ((h.grad, gh), (w.grad, gw)): assert ((a - b).norm() / b.norm()).item() < 2e-2

def test_fused_adamw_and_muon_train_on_gpu(tmp_path):
    for opt in ("adamw", "muon"):
        torch.manual_seed(0)
        rt = resolve_runtime(HardwareConfig(device="cuda", mixed_precision="bf16"))
        cfg = TrainConfig(max_steps=40, batch_tokens=16 * 64, micro_batch_size=16, lr=3e-3, warmup_steps=5, eval_every=0,
                          log_every=10, optimizer=opt)
        tr = Trainer(ModernDecoderLM(tiny()), cfg, rt, train_batches=ToyBatches(256, 64, 16), tokens_per_micro_batch=16 * 64,
                     out_dir=tmp_path / opt, hw=HardwareConfig(device="cuda"), tensorboard=False)
        adamw = [o for o in tr.optimizers if isinstance(o, torch.optim.AdamW)]
        assert adamw and all(o.defaults.get("fused") is True for o in adamw)
        first = tr.train_step()["loss"]
        assert tr.fit()["loss"] < first * 0.6, opt

def test_ddp_on_one_gpu_gives_the_plain_gradients():
    import os, socket, copy
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        m = ModernDecoderLM(tiny()).cuda()
        d = DDP(copy.deepcopy(m), device_ids=[0])
        x = torch.randint(0, 256, (4, 64), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            m(x, x)[1].backward(); d(x, x)[1].backward()
        for (n, p), q in zip(m.named_parameters(), d.module.parameters()): assert torch.allclose(p.grad, q.grad, atol=1e-5), n
    finally:
        dist.destroy_process_group()

def test_autobatch_probe_on_a_real_card():
    from modern_llm.autobatch import lm_step_probe, probe_micro_batch
    cfg = tiny(max_seq_len=256)
    step = lm_step_probe(cfg, TrainConfig(), 256, "cuda", "bf16")
    peak2 = step(2, False)
    assert peak2 and peak2 > 0
    r = probe_micro_batch(step, [16, 8, 4, 2, 1])                 # a tiny model: the largest fits
    assert (r["micro_batch_size"], r["gradient_checkpointing"]) == (16, False) and r["peak_memory_bytes"] > peak2
    r = probe_micro_batch(step, [16, 8, 4, 2, 1], budget=peak2)   # a "card" of peak2 bytes: halves down to 2 (or 1)
    assert r["micro_batch_size"] <= 2 and [t["fits"] for t in r["tries"]][:3] == [False, False, False]


# ---- the generation engine on a GPU (nbs/06_generate.ipynb): the static decode step, CUDA-graph captured by default
def _engine_setup():
    from modern_llm.tokenizer import train_tokenizer
    text = ["Natalia sold 48/2 = <<48/2=24>>24 clips. She sold 48+24 = <<48+24=72>>72 clips. #### 72 Question: ok"] * 20
    tok = train_tokenizer(text, vocab_size=300)
    prompts = [tok.encode("Natalia sold"), tok.encode("Question: What is 3*4? Answer:"), tok.encode("She")]
    return tok, prompts

@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_engine_cuda_graph_matches_eager_steps(dtype):
    "Graph-replayed steps (the default on CUDA, the host looking every 8 steps) give the eager steps' tokens."
    from modern_llm.generate import Engine
    tok, prompts = _engine_setup()
    torch.manual_seed(0)
    m = ModernDecoderLM(tiny(vocab_size=tok.vocab_size)).cuda().eval()
    graphed, eager = Engine(m, tok, dtype=dtype), Engine(m, tok, dtype=dtype, cuda_graphs=False)
    assert graphed.cuda_graphs and graphed.sync_every == 8
    eager.static_shapes = True   # done rows stay in the batch, as in the graph: the same shapes, so the same kernels, bit for bit
    for kw in (dict(), dict(temperature=1.0, top_k=50, top_p=0.95, n_samples=4, seed=3, calculator=True, stop_strings=["ok"])):
        a, b = graphed.generate(prompts, 40, **kw), eager.generate(prompts, 40, **kw)
        assert a == b and sum(len(s) for p in a for s in p) > 0

def test_engine_cuda_graph_calculator_and_stop_strings():
    "Rows wait on the GPU for the host's look (every 8 steps), get the calculator's tokens, stop at a stop string: as on the CPU."
    import re
    import torch.nn as nn
    from modern_llm.generate import Engine, safe_calc
    tok, _ = _engine_setup()
    class Scripted(nn.Module):   # a bigram table over the scripts' tokens (logit 10 per successor): branching, exact logits
        def __init__(self, scripts, V):
            super().__init__()
            self.cfg = tiny(vocab_size=V)
            t = torch.full((V, V), -10.0)
            for s in scripts:
                for a, b in zip(s, s[1:]): t[a, b] = 10.0
            self.table = nn.Parameter(t, requires_grad=False)
        def forward(self, idx, *a, cache=None, last_only=False, **kw):
            if cache is not None: cache.reserve(kw["positions"], kw["token_mask"])
            out = self.table[idx]
            return (out[:, -1:] if last_only else out), None
    prompt = tok.encode("Question:")
    scripts = [prompt + tok.encode(s) + [tok.eos_id] for s in
               ["So <<3*4=99>> done", "So <<2+2=5>> and <<6/4=1>> done", "Then <<10-3=1>> ok", "So <<7*7=9>> and <<3*4=99>> ok"]]
    kw = dict(temperature=1.0, n_samples=8, seed=3, calculator=True, stop_strings=["ok"])
    cpu = Engine(Scripted(scripts, tok.vocab_size), tok).generate([prompt, prompt[-2:]], 24, **kw)
    gpu = Engine(Scripted(scripts, tok.vocab_size).cuda(), tok).generate([prompt, prompt[-2:]], 24, **kw)
    assert gpu == cpu
    calls = [m.groups() for p in gpu for s in p for m in re.finditer(r"<<([^<>=]*)=([^>]*)>>", tok.decode(s))]
    assert calls and all(res == safe_calc(e) for e, res in calls), calls   # every call got the calculator's result

def test_engine_compiled_step_matches_eager():
    "torch.compile'd step (fullgraph), then graph-captured: the eager step's tokens on a small fp32 model."
    from modern_llm.generate import Engine
    tok, prompts = _engine_setup()
    torch.manual_seed(0)
    m = ModernDecoderLM(tiny(vocab_size=tok.vocab_size)).cuda().eval()
    kw = dict(temperature=1.0, top_k=50, n_samples=4, seed=5, calculator=True)
    assert Engine(m, tok, compile=True).generate(prompts, 32, **kw) == Engine(m, tok, cuda_graphs=False).generate(prompts, 32, **kw)

def test_engine_reuses_captured_graphs_by_key(monkeypatch):
    """Calls with one `graph_key` replay the kept graph (one capture) with each call's own state, giving the eager steps'
    tokens; another shape captures another graph; at most `max_graphs` are kept, the least recently used dropped.
    The model has a random learned sink, held in the static cache's slot 0."""
    from modern_llm.generate import Engine
    tok, prompts = _engine_setup()
    torch.manual_seed(0)
    m = ModernDecoderLM(tiny(vocab_size=tok.vocab_size)).cuda().eval()
    with torch.no_grad():
        for b in m.blocks: b.attn.sink_k.normal_(); b.attn.sink_v.normal_()
    captures = []
    class CountedGraph(torch.cuda.CUDAGraph):
        def __init__(self, *a, **k): super().__init__(*a, **k); captures.append(1)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", CountedGraph)
    graphed, eager = Engine(m, tok), Engine(m, tok, cuda_graphs=False)
    eager.static_shapes = True   # the graph's shapes, so the same kernels, bit for bit
    kw = dict(temperature=1.0, top_k=50, n_samples=4, calculator=True, stop_strings=["ok"])
    for seed in (1, 2, 3):
        assert graphed.generate(prompts, 40, seed=seed, **kw) == eager.generate(prompts, 40, seed=seed, **kw)
    assert len(captures) == 1 and len(graphed._graphs) == 1
    short = [p[:2] for p in prompts]   # another cache capacity: another graph
    assert graphed.generate(short, 40, seed=1, **kw) == eager.generate(short, 40, seed=1, **kw)
    assert len(captures) == 2 and len(graphed._graphs) == 2
    graphed.max_graphs = 2
    graphed.generate(prompts, 40, seed=4, **{**kw, "top_k": 20})   # a third key: the least recently used (prompts) goes
    assert len(captures) == 3 and len(graphed._graphs) == 2
    assert graphed.generate(short, 40, seed=5, **kw) == eager.generate(short, 40, seed=5, **kw) and len(captures) == 3
