"""SFT data on the real offline mirror: the smoke preset's mix builds from real Alpaca and GSM8K rows, every GSM8K
conversation keeps its `#### N` line, and every tokenised example has a non-empty loss mask.
Skipped (with the reason) when the mirror is absent."""
import dataclasses, re
import pytest
from modern_llm.config import load_preset
from modern_llm.data import shared_data_dir, load_text_documents, load_records
from modern_llm.sft import build_sft_mix, encode_mix, shift_labels
from modern_llm.splits import gsm8k_part, part_of, question_hash
from modern_llm.tokenizer import train_tokenizer

MIRROR = shared_data_dir()
pytestmark = pytest.mark.skipif(MIRROR is None, reason="no data mirror ($MODERN_LLM_DATA or ../shared/data)")

@pytest.fixture(scope="module")
def smoke_data():
    return dataclasses.replace(load_preset("smoke").data, mirror=str(MIRROR))

@pytest.fixture(scope="module")
def mix(smoke_data): return build_sft_mix(smoke_data, seed=0)

@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(load_text_documents("tinystories", "validation", mirror=str(MIRROR)), 2048, max_bytes=800_000)

def test_smoke_mix_counts(smoke_data, mix):
    specs = {c.name: c for c in smoke_data.sft_mix}
    assert set(mix.sizes) == set(specs) == {"alpaca", "gsm8k"}
    for name, s in mix.sizes.items():
        assert s["loaded"] == specs[name].max_examples, (name, s)
        assert s["val"] >= 4 and s["train"] + s["val"] == s["loaded"], (name, s)
        assert sum(c["source"] == name for c in mix.train) == s["train"]
        assert sum(c["source"] == name for c in mix.val) == s["val"]
    print(mix.sizes)

def test_gsm8k_keeps_final_answer_line(smoke_data, mix):
    limit = next(c for c in smoke_data.sft_mix if c.name == "gsm8k").max_examples
    rows = gsm8k_part(load_records("gsm8k", "train", mirror=str(MIRROR)), "sft", limit)     # SFT trains on its part only
    source = {r["question"]: r["answer"] for r in rows}
    gsm = [c["messages"] for c in mix.train + mix.val if c["source"] == "gsm8k"]
    assert len(gsm) == len(rows)
    for user, assistant in gsm:
        assert re.search(r"\n#### -?[\d,.]+\s*$", assistant["content"]), assistant["content"][-80:]
        assert assistant["content"] == source[user["content"]]   # keep_calculator (default): the solution verbatim

def test_gsm8k_without_calculator(smoke_data):
    m = build_sft_mix(dataclasses.replace(smoke_data, keep_calculator=False), seed=0)
    gsm = [c["messages"][-1]["content"] for c in m.train if c["source"] == "gsm8k"]
    assert gsm and not any("<<" in a or ">>" in a for a in gsm)
    assert all("\n#### " in a for a in gsm)

def test_masks_non_empty_and_counted(smoke_data, mix, tok):
    seq_len = smoke_data.seq_len
    exs, stats = encode_mix(tok, mix.train, seq_len)
    for e in exs:
        x, y = shift_labels(e.ids, e.mask)
        assert len(x) <= seq_len and any(t != -100 for t in y)
    for name, s in stats.items():   # every conversation is kept, truncated or dropped, and counted
        assert s["examples"] + s["dropped"] == mix.sizes[name]["train"], (name, s)
    whole = [e for e in exs if e.source == "gsm8k" and e.ids[-1] == tok.end_id]
    assert whole, "no GSM8K example fits whole"
    for e in whole[:50]:   # a kept-whole answer's labels end with its #### line and <|end|>
        y = [t for t in shift_labels(e.ids, e.mask)[1] if t != -100]
        assert "#### " in tok.decode(y).splitlines()[-1] and y[-1] == tok.end_id
    print(stats)

def test_gsm8k_sft_part_only(mix):
    "SFT's GSM8K conversations all come from the 'sft' part of the shared split: none from the held-out part."
    gsm = [c["messages"][0]["content"] for c in mix.train + mix.val if c["source"] == "gsm8k"]
    assert gsm and all(part_of(q) == "sft" for q in gsm)
    assert sorted(mix.problems["gsm8k"]) == sorted(question_hash(q) for q in gsm)
