"""The data layer on the real offline mirror (`shared_data_dir()`, i.e. $MODERN_LLM_DATA or ../shared/data):
row counts of every stored split, documents of the text corpora, clear errors for the splits the mirror lacks,
and the compression of a tokenizer trained on ~2 MB of it. Skipped, with the reason, where there is no mirror."""
import gzip
import pytest
from modern_llm.data import DataError, shared_data_dir, load_records, load_text_documents, mirror_files
from modern_llm.tokenizer import train_tokenizer, bytes_per_token

MIRROR = shared_data_dir()
pytestmark = pytest.mark.skipif(MIRROR is None, reason="no offline data mirror: set $MODERN_LLM_DATA or put it at ../shared/data")

@pytest.fixture(scope="module")
def books(): return load_text_documents("gutenberg", "train", MIRROR)

@pytest.mark.parametrize("name,split,n", [("gsm8k", "train", 7_473), ("gsm8k", "test", 1_319),
                                          ("hh_rlhf", "test", 8_552), ("alpaca", "train", 5_000)])
def test_record_counts(name, split, n):
    rows = load_records(name, split, MIRROR)
    assert len(rows) == n
    assert all(isinstance(v, str) for r in rows for v in r.values())

def test_gsm8k_answers_end_with_the_number():
    assert all("\n#### " in r["answer"] for r in load_records("gsm8k", "test", MIRROR))

def test_hh_rlhf_subsets():
    assert len(mirror_files("hh_rlhf", "test", MIRROR)) == 4

def test_wikitext2_validation_articles():
    arts = load_text_documents("wikitext2", "validation", MIRROR)
    assert len(arts) == 60                       # EleutherAI/wikitext_document_level has 60 validation pages
    assert arts[0].startswith(" \n = Homarus gammarus = \n")
    raw = gzip.decompress(mirror_files("wikitext2", "validation", MIRROR)[0].read_bytes()).decode()
    assert "".join(arts) == raw                  # articles are exact slices of the raw file
    assert len(load_text_documents("wikitext2", "test", MIRROR)) == 62

def test_tinystories_paragraphs():
    assert len(load_text_documents("tinystories", "validation", MIRROR)) > 4_000

def test_gutenberg_books(books):
    assert len(books) == 107
    assert sum(len(b.encode()) for b in books) == 67_588_811   # README: raw UTF-8 bytes of the 107 bodies
    assert books == [b for b in books if b]      # no empty document

@pytest.mark.parametrize("name,split,path", [("wikitext2", "train", "wikitext2/train.txt.gz"),
                                             ("hh_rlhf", "train", "hh-rlhf/*/train.jsonl.gz"),
                                             ("oasst1", "train", "oasst1/train.jsonl.gz")])
def test_missing_splits_fail_clearly(name, split, path):
    load = load_text_documents if name == "wikitext2" else load_records
    with pytest.raises(DataError, match="modern-llm data pull") as e: load(name, split, MIRROR)
    assert path in str(e.value)

def test_tokenizer_bytes_per_token(books):
    tok = train_tokenizer(books, vocab_size=4096, max_bytes=2_000_000)
    val = load_text_documents("wikitext2", "validation", MIRROR)
    assert tok.decode(tok.encode(val[0])) == val[0]
    bpt = bytes_per_token(tok, val)
    print(f"\nbyte-level BPE, vocab 4096, trained on 2 MB of Gutenberg: {bpt:.3f} bytes/token on WikiText-2 validation")
    assert 2.5 < bpt < 5.0
