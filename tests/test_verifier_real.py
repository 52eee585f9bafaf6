"""The verifier's constructed negatives on the real GSM8K train split (skipped with the reason when no mirror is present).

The notebook 09a_verifier_data checks the same guarantee on synthetic GSM8K-format fixtures; here it runs over all
7,473 real solutions, rendered both with and without calculator annotations."""
import random
from collections import Counter
import pytest
from modern_llm.data import load_records, shared_data_dir
from modern_llm.evaluate import answers_match, extract_answer, gold_answer
from modern_llm.verifier_data import NEGATIVE_KINDS, labelled_rows, negatives, verifier_problems
from modern_llm.splits import PARTS, gsm8k_part, part_of

MIRROR = shared_data_dir()
pytestmark = pytest.mark.skipif(MIRROR is None or not (MIRROR / "gsm8k" / "train.jsonl.gz").exists(),
                                reason="no GSM8K mirror (set MODERN_LLM_DATA or provide ../shared/data)")

@pytest.fixture(scope="module")
def train():
    return load_records("gsm8k", "train", mirror=MIRROR)

@pytest.mark.parametrize("keep_calculator", [True, False])
def test_negatives_never_equal_gold(train, keep_calculator):
    rng, made = random.Random(0), Counter()
    for i, r in enumerate(train):
        gold = gold_answer(r["answer"])
        for kind, text in negatives(i, train, rng, keep_calculator).items():
            for mode in ("strict", "flexible"):
                assert not answers_match(extract_answer(text, mode), gold), (i, kind, mode, text)
            assert keep_calculator or "<<" not in text, (i, kind, text)
            made[kind] += 1
    # every kind applies to nearly every real problem (a step slip needs an annotated step that feeds the answer)
    assert all(made[k] > 0.9 * len(train) for k in NEGATIVE_KINDS), made

def test_labelled_rows_and_holdout(train):
    rows = labelled_rows(train[:100], seed=0)
    golds = [r for r in rows if r["source"] == "gold"]
    assert len(golds) == 100 and all(r["label"] == 1 for r in golds)
    assert all(r["label"] == 0 for r in rows if r["source"] in NEGATIVE_KINDS)

def test_verifier_problems_on_the_real_split(train):
    "The verifier trains on its own part of GSM8K train and is measured on the held-out part: disjoint from SFT's and DPO's."
    sizes = {p: len(gsm8k_part(train, p)) for p in PARTS}
    assert sizes == {"sft": 4575, "dpo": 1061, "verifier": 1101, "heldout": 736}, sizes   # the recorded split of 7,473 problems
    tr, va = verifier_problems(train, 256, 0.2)
    assert (len(tr), len(va)) == (205, 51)
    assert {part_of(r["question"]) for r in tr} == {"verifier"} and {part_of(r["question"]) for r in va} == {"heldout"}
    tr, va = verifier_problems(train, 5000, 0.1)          # more than the parts hold: the whole parts
    assert (len(tr), len(va)) == (1101, 500)
