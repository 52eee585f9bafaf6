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
