"""Training throughput of ModernDecoderLM through the real `Trainer.train_step` (forward, backward, clip, optimizer step),
on random tokens, on the current device: tokens/s, MFU against the GPU's looked-up bf16 peak, peak memory.

    python bench/train_throughput.py --preset smoke --steps 20
    python bench/train_throughput.py --d-model 768 --n-layers 12 --n-heads 12 --n-kv-heads 12 --seq-len 1024 \\
        --micro-batch 16 --vocab 50304 --compile --steps 50 --warmup 10 --out bench/h100_124m.json

Memory: `torch.cuda.max_memory_allocated` on a GPU; on a CPU the process's peak RSS (includes Python and torch itself).
"""
import argparse, dataclasses, json, resource, sys, tempfile, time
from pathlib import Path
import torch
from modern_llm.config import HardwareConfig, ModelConfig, TrainConfig, load_preset
from modern_llm.errors import ModernLLMError
from modern_llm.runtime import resolve_runtime
from modern_llm.model import ModernDecoderLM, estimate_memory_gb, flops_per_token, num_params
from modern_llm.trainer import ToyBatches, Trainer, device_name, mfu


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", help="take the model, seq_len, micro-batch, optimizer and hardware from this preset")
    for k in ("d-model", "n-layers", "n-heads", "n-kv-heads", "seq-len", "micro-batch", "vocab"): ap.add_argument(f"--{k}", type=int)
    ap.add_argument("--no-sink", action="store_true", help="model.sink=False (plain causal attention, SDPA's fastest kernels)")
    ap.add_argument("--optimizer", choices=["adamw", "muon"])
    ap.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], default=None)
    ap.add_argument("--device", default=None, help="cpu | cuda | auto (default: the preset's, else auto)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile (default: the preset's)")
    ap.add_argument("--grad-ckpt", action=argparse.BooleanOptionalAction, default=None, help="gradient checkpointing")
    ap.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, allocator, cuDNN autotune)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--out", help="write the result as JSON here")
    return ap.parse_args(argv)


def setup(a):
    "ModelConfig, TrainConfig, HardwareConfig, seq_len, micro-batch from a preset and/or explicit arguments."
    p = load_preset(a.preset) if a.preset else None
    m = p.model if p else ModelConfig(d_model=768, n_layers=12, n_heads=12, n_kv_heads=12, vocab_size=50304, max_seq_len=1024)
    seq = a.seq_len or (p.data.seq_len if p else 1024)
    micro = a.micro_batch or (p.train.pretrain.micro_batch_size if p else 16)
    if micro == "auto": sys.exit(f"train_throughput: preset {a.preset} has micro_batch_size: auto; pass --micro-batch N")
    m = dataclasses.replace(m, **{k: v for k, v in dict(d_model=a.d_model, n_layers=a.n_layers, n_heads=a.n_heads,
                                                         n_kv_heads=a.n_kv_heads, vocab_size=a.vocab).items() if v},
                            max_seq_len=max(seq, m.max_seq_len), **({"sink": False} if a.no_sink else {}))
    t = dataclasses.replace(p.train.pretrain if p else TrainConfig(lr=6e-4), max_steps=a.warmup + a.steps, warmup_steps=0,
                            batch_tokens=micro * seq, micro_batch_size=micro, eval_every=0, save_every=0, log_every=10**9,
                            **({"optimizer": a.optimizer} if a.optimizer else {}))
    hw = p.hardware if p else HardwareConfig()
    hw = dataclasses.replace(hw, num_threads=a.threads, **{k: v for k, v in dict(
        device=a.device, mixed_precision=a.dtype, compile=a.compile, gradient_checkpointing=a.grad_ckpt).items() if v is not None})
    return m, t, hw, seq, micro


def main(argv=None):
    a = parse(argv)
    try: mcfg, tcfg, hw, seq, micro = setup(a)
    except ModernLLMError as e:   # an unknown preset or a bad value: one line naming it, exit 2 (the CLI's rule)
        print(f"train_throughput: error: {e}", file=sys.stderr); sys.exit(2)
    rt = resolve_runtime(hw)
    torch.manual_seed(0)
    model = ModernDecoderLM(mcfg)
    fpt = flops_per_token(mcfg, seq)
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(model, tcfg, rt, train_batches=ToyBatches(mcfg.vocab_size, seq, micro, random_tokens=True),
                     tokens_per_micro_batch=micro * seq, out_dir=d, flops_per_token=fpt, hw=hw, tensorboard=False)
        cuda = tr.device.type == "cuda"
        t0, loss0 = time.perf_counter(), None
        for _ in range(a.warmup): loss0 = tr.train_step()["loss"]
        warm_s = time.perf_counter() - t0
        if cuda: torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.steps): last = tr.train_step()         # each step ends in one host sync (its loss)
        if cuda: torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    tps = a.steps * tr.tokens_per_step / dt
    mem = torch.cuda.max_memory_allocated() / 1024**3 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    res = {"device": device_name(tr.device), "dtype": rt.dtype, "compile": bool(hw.compile), "optimizer": tcfg.optimizer,
           "gradient_checkpointing": hw.gradient_checkpointing, "sink": mcfg.sink, "threads": torch.get_num_threads() if not cuda else None,
           "model": dataclasses.asdict(mcfg), "params": num_params(mcfg), "seq_len": seq, "micro_batch": micro,
           "tokens_per_step": tr.tokens_per_step, "flops_per_token": fpt, "steps": a.steps, "warmup_steps": a.warmup,
           "warmup_s": round(warm_s, 2), "ms_per_step": round(1000 * dt / a.steps, 2), "tokens_per_s": round(tps, 1),
           "mfu": mfu(fpt, tps, tr.peak), "peak_memory_gb": round(mem, 3),
           "memory_kind": "torch.cuda.max_memory_allocated" if cuda else "process peak RSS",
           "estimate_memory_gb": estimate_memory_gb(mcfg, micro, seq, hw.gradient_checkpointing,
                                                    bytes_act=2 if rt.dtype != "fp32" else 4),
           "loss_first": loss0, "loss_last": last["loss"], "torch": torch.__version__,
           "command": "python bench/train_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(json.dumps(res, indent=1))
    if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
