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
