"""Evaluation code against the real GSM8K and WikiText-2 files of the data mirror (skipped, with the reason, when absent)."""
import pytest
from modern_llm.data import load_records, load_text_documents, shared_data_dir
from modern_llm.evaluate import answers_match, extract_answer, fewshot_text, gold_answer, normalize_number

MIRROR = shared_data_dir()
needs_mirror = pytest.mark.skipif(MIRROR is None, reason="no data mirror: set MODERN_LLM_DATA or place it at ../shared/data")

@needs_mirror
def test_extraction_recovers_every_gsm8k_test_gold():
    rows = load_records("gsm8k", "test", mirror=MIRROR)
    assert len(rows) == 1319
    for i, r in enumerate(rows):
        gold = gold_answer(r["answer"])
        final = r["answer"].rsplit("#### ", 1)[1].strip()
        assert gold == normalize_number(final), (i, final)
        # both lm-eval filters read the gold solution's own answer back
        assert answers_match(extract_answer(r["answer"], "strict"), gold), (i, r["answer"][-60:])
        assert answers_match(extract_answer(r["answer"], "flexible"), gold), (i, r["answer"][-60:])

@needs_mirror
def test_fewshot_exemplars_are_the_first_train_problems():
    train = load_records("gsm8k", "train", mirror=MIRROR, limit=2)
    text = fewshot_text("How many?", train)
    assert text.startswith("Question: Natalia sold clips") and text.count("\n#### ") == 2 and text.endswith("Answer:")

@needs_mirror
def test_wikitext_splits_present():
    for split in ("validation", "test"):
        docs = load_text_documents("wikitext2", split, mirror=MIRROR)
        assert len("".join(docs).encode("utf-8")) > 1_000_000

@needs_mirror
def test_eval_data_avoids_the_pretraining_split(monkeypatch):
    from modern_llm.config import load_preset
    from modern_llm.eval_stage import load_eval_data
    monkeypatch.setenv("MODERN_LLM_DATA", str(MIRROR))
    d = load_eval_data(load_preset("smoke"))
    assert d.sources["perplexity"]["split"] == "validation" and not d.sources["perplexity"]["contaminated"]
    # a preset that pretrains on wikitext2/validation gets perplexity on test, and the record says why
    p = load_preset("smoke", ["data.pretrain_mix=[{name: wikitext2, split: validation}]"])
    d = load_eval_data(p)
    ppl = d.sources["perplexity"]
    assert ppl["split"] == "test" and not ppl["contaminated"] and "pretraining mix" in ppl["note"]
    assert ppl["fingerprint"] and d.sources["gsm8k"]["rows"] == len(d.gsm8k) == p.eval.gsm8k_subset
    assert len(d.exemplars) == p.eval.gsm8k_fewshot and d.exemplars[0]["question"].startswith("Natalia")
    assert d.sink_text == d.ppl_text and len(d.ppl_text.encode()) == 1_290_590   # wiki.test.raw, byte for byte


def _gpt2_byte_decoder():
    "GPT-2's byte-to-unicode map (Radford et al. 2019, encoder.py), inverted: vocabulary character -> byte."
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs: bs.append(b); cs.append(256 + n); n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


@needs_mirror
def test_bytes_are_counted_from_tokens_on_wikitext():
    "perplexity_eval's byte count under a token cap is the scored tokens' own bytes, also where the cap cuts a character."
    import torch
    from modern_llm.config import ModelConfig
    from modern_llm.model import ModernDecoderLM
    from modern_llm.perplexity import perplexity_eval
    from modern_llm.tokenizer import token_byte_lengths, train_tokenizer
    text = "".join(load_text_documents("wikitext2", "test", mirror=MIRROR))[:60_000]
    raw = text.encode("utf-8")
    assert len(raw) > len(text)   # WikiText-2 has multi-byte characters (accents, dashes)
    tok = train_tokenizer([text], vocab_size=400)
    dec, ids = _gpt2_byte_decoder(), tok.encode(text)
    vocab = {i: s for s, i in tok.tk.get_vocab(with_added_tokens=False).items()}
    lens = token_byte_lengths(tok.tk)
    assert all(lens[i] == len(vocab[i]) for i in set(ids))
    assert b"".join(bytes(dec[c] for c in vocab[i]) for i in ids) == raw
    model = ModernDecoderLM(ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64)).eval()
    ends = torch.tensor([lens[i] for i in ids]).cumsum(0).tolist()
    inside = [n for n in range(1, 3000) if raw[ends[n - 1]:ends[n - 1] + 1] and (raw[ends[n - 1]] & 0xC0) == 0x80]
    assert inside, "no token cap inside a character in the first 3000 tokens"
    for n in inside[:3] + [1000]:
        r = perplexity_eval(model, tok, text, seq_len=64, max_tokens=n)
        assert r["bytes"] == ends[n - 1] and r["chars"] == len(raw[:ends[n - 1]].decode("utf-8", errors="ignore"))
        assert abs(r["bpb"] - r["nll"] * n / (0.6931471805599453 * ends[n - 1])) < 1e-9


def test_wilson_interval_matches_scipy():
    "The Wilson score interval against scipy's implementation over a grid of counts."
    stats = pytest.importorskip("scipy.stats", reason="scipy is not installed")
    from modern_llm.evaluate import wilson_interval
    for n in (1, 3, 20, 263, 1319):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
            lo, hi = wilson_interval(k, n)
            assert abs(lo - ci.low) < 1e-9 and abs(hi - ci.high) < 1e-9, (k, n)
