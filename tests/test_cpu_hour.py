"""The `cpu_hour` preset: every stage's gain on 2 CPU cores in about an hour (`bash speedrun.sh cpu_hour`).

Its run is too long for CI, which keeps the smoke speedrun. These tests check what can be checked without running it:
the preset loads and runs the standard stages on the generated problems (01b_synth_math), every generated problem a
score is measured on is held out from every problem a stage trains on, and the committed record
`paper/results/cpu_hour/` is a finished run of this very preset within the time the preset promises."""
import json
from dataclasses import asdict
import pytest
from modern_llm.config import load_preset, repo_root
from modern_llm.dpo_data import onpolicy_problems
from modern_llm.orchestrate import default_stages_dir, stage_notebook
from modern_llm.runs import STAGES
from modern_llm.synth_math import synth_gsm
from modern_llm.verifier_data import verifier_problems

RECORD = repo_root() / "paper" / "results" / "cpu_hour"
WALL_LIMIT_S = 75 * 60    # the preset's promise on 2 CPU cores


def test_preset_loads_with_the_standard_stages():
    p = load_preset("cpu_hour")
    assert STAGES == ("pretrain", "sft", "dpo", "verifier", "evaluate", "report")
    for stage in STAGES: stage_notebook(stage, default_stages_dir())      # raises when a stage has no notebook
    assert p.base_checkpoint == "" and p.hardware.device == "cpu"         # pretrains from scratch, on the CPU
    assert "gsm_synth" in [c.name for c in p.data.sft_mix]
    assert [c.name for c in p.data.dpo_mix] == ["hh_rlhf", "gsm_synth_onpolicy"]
    assert p.train.verifier.task == "gsm_synth" and p.eval.synth_subset >= 200 and p.eval.gsm8k_subset > 0


def test_generated_problems_are_held_out_by_construction():
    "SFT's draw, DPO's and the verifier's training problems share no question with any problem a score is measured on."
    p = load_preset("cpu_hour")
    sft_n = next(c.max_examples for c in p.data.sft_mix if c.name == "gsm_synth")
    dpo_train, dpo_held, _, _ = onpolicy_problems("gsm_synth_onpolicy", p.train.dpo.onpolicy_problems, None, {})
    ver_train, ver_held = verifier_problems(None, p.train.verifier.problems, p.train.verifier.holdout_frac, "gsm_synth")
    q = lambda rows: {r["question"] for r in rows}
    trained = q(synth_gsm("train", sft_n)) | q(dpo_train) | q(ver_train)
    measured = q(dpo_held) | q(ver_held) | q(synth_gsm("test", p.eval.synth_subset))
    assert len(measured) > p.eval.synth_subset and not trained & measured


def _record(rel):
    "A file of the committed record; required as soon as the README quotes it (its `results:cpu_hour` block)."
    f = RECORD / rel
    quoted = "<!-- results:cpu_hour -->" in (repo_root() / "README.md").read_text()
    if not RECORD.exists() and not quoted: pytest.skip(f"no committed cpu_hour record ({RECORD}) and the README quotes none")
    assert f.is_file(), f"{f}: missing; save a finished run with `python -m modern_llm.readme_results save <run_dir> {RECORD}`"
    return f


def test_committed_record_is_this_preset_within_the_hour():
    recorded = load_preset(_record("preset.yaml"))
    now = load_preset("cpu_hour")
    for part in ("model", "train", "data", "eval", "hardware"):
        assert asdict(getattr(recorded, part)) == asdict(getattr(now, part)), f"{part}: params/cpu_hour.yaml changed since the recorded run"
    stages = json.loads(_record("stages.json").read_text())["stages"]
    assert list(stages) == list(STAGES) and all(s["status"] == "done" for s in stages.values()), stages
    wall = sum(s["wall_s"] for s in stages.values())
    assert wall <= WALL_LIMIT_S, f"the recorded run took {wall / 60:.1f} min, the preset promises <= {WALL_LIMIT_S / 60:.0f}"
    env = json.loads(_record("env.json").read_text())
    assert not env["git"]["dirty"] and env["environment"]["cuda"] is False


def _ablate():
    "bench/ablate.py as a module (a script, not part of the package)."
    import importlib.util
    spec = importlib.util.spec_from_file_location("ablate", repo_root() / "bench" / "ablate.py")
    ablate = importlib.util.module_from_spec(spec); spec.loader.exec_module(ablate)
    return ablate


def test_docs_tables_are_rendered_from_the_records():
    "docs/cpu_hour.md's targets and ablation tables equal what `python bench/ablate.py table` writes (never typed)."
    ablate = _ablate()
    _record("stages.json")
    assert ablate.rendered_doc() == ablate.DOC.read_text(), "docs/cpu_hour.md is stale: run python bench/ablate.py table"


def test_ablation_rows_reject_bad_lines_naming_file_and_line(tmp_path):
    "A results line that is torn, not JSON or short of a key is reported by `file:line`; a missing or empty file would empty the tables."
    ablate, f = _ablate(), tmp_path / "a.jsonl"
    good = json.dumps({k: "x" for k in ablate.ROW_KEYS})
    for text, msg in ((f"{good}\n{good[:40]}\n", "a.jsonl:2: not valid JSON"), (f'{good}\n{{"name": "x"}}\n', "a.jsonl:2: missing key 'stage'"),
                      ("\n", "no ablation rows"), ("[1]\n", "a.jsonl:1: missing key")):
        f.write_text(text)
        with pytest.raises(ablate.AblationError, match=msg): ablate.ablation_rows(f)
    with pytest.raises(ablate.AblationError, match="missing"): ablate.ablation_rows(tmp_path / "none.jsonl")
    f.write_text(good + "\n"); assert ablate.ablation_rows(f) == [json.loads(good)]


def test_ablate_bad_input_exits_2_before_touching_scratch(tmp_path, capsys):
    "A missing run or an unknown override is one line and exit 2, and no scratch folder is made or replaced."
    ablate = _ablate()
    with pytest.raises(SystemExit) as e: ablate.main(["run", str(tmp_path / "nope"), "dpo", "x", "train.dpo.beta=2"])
    assert e.value.code == 2 and "nope: no such run folder" in capsys.readouterr().err
    run = tmp_path / "run"
    for rel in ("checkpoints/base", "checkpoints/sft", "results"): (run / rel).mkdir(parents=True)
    for rel in ("env.json", "tokenizer.json", "results/heldout.json"): (run / rel).write_text("{}")
    with pytest.raises(SystemExit) as e: ablate.main(["run", str(run), "dpo", "x"])
    assert e.value.code == 2 and "preset.yaml: missing" in capsys.readouterr().err
    (run / "preset.yaml").write_text((repo_root() / "params" / "cpu_hour.yaml").read_text())
    with pytest.raises(SystemExit) as e: ablate.main(["run", str(run), "dpo", "x", "train.dpo.no_such_key=1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "no_such_key" in err and len(err.strip().splitlines()) == 1, err
    assert not (repo_root() / "runs" / "ablations" / "run-dpo-x").exists()
