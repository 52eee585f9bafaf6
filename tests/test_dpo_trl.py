"""`modern_llm.dpo.dpo_loss` against Hugging Face TRL's DPO loss types on the same log-probabilities.

Two references:

* `test_against_trl` (needs `trl`, skipped without it): TRL 1.x has no standalone `dpo_loss`; the loss is computed
  inside `DPOTrainer._compute_loss`. We run that method itself on a bare `DPOTrainer` with precomputed reference
  log-probs and a stand-in model whose per-token log-probabilities we choose, and compare the loss and the logged
  `rewards/*` metrics. Checked with trl 1.16.0 (`pip install trl`).
* `test_against_transcribed_trl` (always runs): the formulas transcribed from TRL's source
  (trl/trainer/dpo_trainer.py, 1.16.0, `_compute_loss`; and for cDPO the `sigmoid` branch of TRL 0.x, which
  applied `label_smoothing` and which TRL 1.x dropped).
"""
import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from modern_llm.dpo import dpo_loss

B, T = 6, 9
CASES = [("sigmoid", 0.0), ("hinge", 0.0), ("ipo", 0.0), ("robust", 0.0), ("robust", 0.1), ("robust", 0.3)]


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    logps = {k: -torch.rand(B, generator=g, dtype=torch.float64) * 40 - 1 for k in ("pc", "pr", "rc", "rr")}
    lens = torch.randint(1, T - 1, (2 * B,), generator=g)        # completion tokens per row (chosen rows, then rejected)
    return logps, lens


def _trl_reference(logps, lens, beta, loss_type, eps):
    "TRL 1.16 `_compute_loss` (precomputed reference, reverse KL), transcribed."
    pc, pr, rc, rr = logps["pc"], logps["pr"], logps["rc"], logps["rr"]
    chosen_logratios, rejected_logratios = pc - rc, pr - rr
    delta = chosen_logratios - rejected_logratios
    if loss_type == "sigmoid":   # TRL 0.x: cDPO label smoothing (1.x: the eps = 0 case only)
        loss = -F.logsigmoid(beta * delta) * (1 - eps) - F.logsigmoid(-beta * delta) * eps
    elif loss_type == "hinge": loss = torch.relu(1 - beta * delta)
    elif loss_type == "ipo":
        cl, rl = lens.double().chunk(2)
        loss = ((chosen_logratios / cl.clamp(min=1.0) - rejected_logratios / rl.clamp(min=1.0)) - 1 / (2 * beta)) ** 2
    elif loss_type == "robust":
        clean = -(1 - eps) * F.logsigmoid(beta * delta)
        flipped = -eps * F.logsigmoid(-beta * delta)
        loss = (clean - flipped) / (1 - 2 * eps)
    return loss.mean(), beta * chosen_logratios, beta * rejected_logratios


def _ours(logps, lens, beta, loss_type, eps):
    cl, rl = lens.double().chunk(2)
    losses, cr, rr = dpo_loss(logps["pc"], logps["pr"], logps["rc"], logps["rr"], beta, loss_type, eps,
                              chosen_lengths=cl, rejected_lengths=rl)
    return losses.mean(), cr, rr


@pytest.mark.parametrize("loss_type,eps", CASES + [("sigmoid", 0.1), ("sigmoid", 0.25)])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_against_transcribed_trl(loss_type, eps, beta):
    logps, lens = _inputs()
    ours, theirs = _ours(logps, lens, beta, loss_type, eps), _trl_reference(logps, lens, beta, loss_type, eps)
    for a, b in zip(ours, theirs): torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_reference_free_matches_zero_reference():
    logps, lens = _inputs(1)
    a = dpo_loss(logps["pc"], logps["pr"], logps["rc"], logps["rr"], 0.2, reference_free=True)
    zero = torch.zeros(B, dtype=torch.float64)
    b = dpo_loss(logps["pc"], logps["pr"], zero, zero, 0.2)
    for x, y in zip(a, b): torch.testing.assert_close(x, y)


def _bare_trl_trainer(beta, loss_type, eps):
    "A `DPOTrainer` with only the attributes `_compute_loss` reads on the precomputed-reference path."
    from trl import DPOTrainer
    tr = DPOTrainer.__new__(DPOTrainer)
    ident = lambda x: x
    tr.__dict__.update(
        model=SimpleNamespace(training=True),
        accelerator=SimpleNamespace(device=torch.device("cpu"), gather=ident, gather_for_metrics=ident),
        aux_loss_enabled=False, use_weighting=False, ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl",
        loss_types=[loss_type], loss_weights=[1.0], beta=beta, label_smoothing=eps,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0, _tp_size=1)
    return tr


def _stand_in_model(logps, lens):
    "Callable like TRL's patched model: per-token log-probs [2B, T-1] on completion positions, summing to our logps."
    seq = torch.cat([logps["pc"], logps["pr"]]).float()
    comp = torch.zeros(2 * B, T, dtype=torch.long)
    for i, n in enumerate(lens.tolist()): comp[i, T - n:] = 1                  # completions at the end of the row
    per_tok = comp[:, 1:].float() * (seq / lens.float())[:, None]              # spread evenly over the completion
    def model(**kw):
        return SimpleNamespace(log_probs=per_tok, entropy=torch.zeros(2 * B, T - 1), mean_logits=torch.zeros(2 * B, T - 1),
                               is_top1=torch.zeros(2 * B, T - 1, dtype=torch.bool))
    inputs = {"input_ids": torch.ones(2 * B, T, dtype=torch.long), "attention_mask": torch.ones(2 * B, T, dtype=torch.long),
              "completion_mask": comp, "ref_chosen_logps": logps["rc"].float(), "ref_rejected_logps": logps["rr"].float()}
    return model, inputs


@pytest.mark.parametrize("loss_type,eps", CASES)
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_against_trl(loss_type, eps, beta):
    pytest.importorskip("trl", reason="trl not installed: test_against_transcribed_trl compares with TRL's formulas instead")
    logps, lens = _inputs()
    logps32 = {k: v.float() for k, v in logps.items()}
    tr = _bare_trl_trainer(beta, loss_type, eps)
    model, inputs = _stand_in_model(logps32, lens)
    loss = tr._compute_loss(model, inputs, return_outputs=False)
    ours, cr, rr = _ours({k: v.double() for k, v in logps32.items()}, lens, beta, loss_type, eps)
    assert math.isclose(loss.item(), ours.item(), rel_tol=1e-5, abs_tol=1e-6), (loss.item(), ours.item())
    m = tr._metrics["train"]
    for name, want in [("rewards/chosen", cr.mean()), ("rewards/rejected", rr.mean()), ("rewards/margins", (cr - rr).mean()),
                       ("rewards/accuracies", (cr > rr).double().mean())]:
        assert math.isclose(m[name][-1], want.item(), rel_tol=1e-5, abs_tol=1e-5), (name, m[name][-1], want.item())


def test_trl_sigmoid_ignores_label_smoothing():
    "TRL 1.x's `sigmoid` no longer applies label smoothing (cDPO); ours does, so they agree only at eps = 0."
    pytest.importorskip("trl", reason="trl not installed")
    logps, lens = _inputs()
    logps32 = {k: v.float() for k, v in logps.items()}
    model, inputs = _stand_in_model(logps32, lens)
    smoothed = _bare_trl_trainer(0.1, "sigmoid", 0.2)._compute_loss(model, inputs, return_outputs=False)
    plain = _bare_trl_trainer(0.1, "sigmoid", 0.0)._compute_loss(model, inputs, return_outputs=False)
    assert smoothed.item() == plain.item()
    ours = _ours({k: v.double() for k, v in logps32.items()}, lens, 0.1, "sigmoid", 0.2)[0]
    assert not math.isclose(ours.item(), plain.item(), rel_tol=1e-4)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_rpo_matches_trl_sft_term(alpha):
    """`rpo_alpha` (RPO, TRL 0.x's name) is TRL 1.x's `loss_type=["sigmoid", "sft"]`, `loss_weights=[1, alpha]`: the
    mean DPO loss over pairs plus alpha x the NLL per chosen completion token, combined by our trainer's `StepLoss`."""
    pytest.importorskip("trl", reason="trl not installed")
    from modern_llm.config import DPOConfig
    from modern_llm.dpo import make_loss_fn
    logps, lens = _inputs(2)
    logps32 = {k: v.float() for k, v in logps.items()}
    tr = _bare_trl_trainer(0.1, "sigmoid", 0.0)
    tr.__dict__.update(loss_types=["sigmoid", "sft"], loss_weights=[1.0, alpha])
    model, inputs = _stand_in_model(logps32, lens)
    theirs = tr._compute_loss(model, inputs, return_outputs=False).item()
    d = {k: v.double() for k, v in logps32.items()}
    losses, _, _ = dpo_loss(d["pc"], d["pr"], d["rc"], d["rr"], 0.1)
    n_chosen = int(lens[:B].sum())
    ours = make_loss_fn(DPOConfig(beta=0.1, rpo_alpha=alpha)).combine([losses.sum(), -d["pc"].sum()], [B, n_chosen])
    assert math.isclose(theirs, ours, rel_tol=1e-5), (theirs, ours)
    plain = make_loss_fn(DPOConfig(beta=0.1)).combine([losses.sum()], [B])
    assert not math.isclose(plain, ours, rel_tol=1e-3)    # the SFT term is there
