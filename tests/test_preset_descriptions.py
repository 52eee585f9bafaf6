"""A preset's description that names its size (`~40M-parameter`) says the size `modern-llm presets` counts: the
description is what a user reads first (h100_10min said ~40M for a 27.8M-parameter model)."""
import re
import pytest
from modern_llm.config import load_preset, preset_names
from modern_llm.model import num_params

@pytest.mark.parametrize("name", preset_names())
def test_description_size_matches_the_model(name):
    p = load_preset(name)
    m = re.search(r"~(\d+(?:\.\d+)?)([MB])-parameter", p.description)
    if m is None: pytest.skip(f"{name}: the description names no size")
    said = float(m[1]) * (1e6 if m[2] == "M" else 1e9)
    assert abs(num_params(p.model) - said) <= 0.15 * said, f"{name}: description {said:.3g}, model {num_params(p.model):.3g}"
