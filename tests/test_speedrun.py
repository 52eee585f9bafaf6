"""The one-button speedrun: `bash speedrun.sh smoke` on 2 CPU cores with real data from the mirror, run once per
session (module-scoped fixture) into a temporary runs directory; then resume, a base checkpoint in place of
pretraining, and a failing stage (seconds each)."""
import os, re, subprocess, sys, time
from pathlib import Path
from types import SimpleNamespace
import nbformat, pytest
from modern_llm.data import shared_data_dir
from modern_llm.orchestrate import STAGE_OUTPUTS, StageError, read_stages, run_stages, start_run
from modern_llm.report import SECTIONS
from modern_llm.runs import STAGES, read_json

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 600                     # the whole smoke speedrun on 2 CPU cores
pytestmark = pytest.mark.slow

def speedrun(runs, run_id, *args, timeout=3 * BUDGET_S):
    "`bash speedrun.sh ARGS` with runs under `runs`; returns (CompletedProcess, wall seconds)."
    env = {**os.environ, "MODERN_LLM_RUNS": str(runs), "RUN_ID": run_id, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if shared_data_dir(): env.setdefault("MODERN_LLM_DATA", str(shared_data_dir()))
    t0 = time.time()
    r = subprocess.run(["bash", str(ROOT / "speedrun.sh"), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    return r, time.time() - t0

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    if shared_data_dir() is None: pytest.skip("no data mirror: set MODERN_LLM_DATA (CI uses ../shared/data)")
    runs = tmp_path_factory.mktemp("runs")
    r, wall = speedrun(runs, "smoke", "smoke")
    print(f"smoke speedrun: {wall:.0f} s\n{r.stdout[-3000:]}")
    return SimpleNamespace(runs=runs, dir=runs / "smoke", proc=r, wall=wall)

def test_smoke_speedrun_succeeds_within_budget(smoke):
    assert smoke.proc.returncode == 0, smoke.proc.stdout[-3000:] + smoke.proc.stderr[-5000:]
    assert f"report: {smoke.dir}/report/report.md" in smoke.proc.stdout
    assert smoke.wall <= BUDGET_S, f"smoke speedrun took {smoke.wall:.0f} s (budget {BUDGET_S} s): {read_stages(smoke.dir)}"

def test_every_stage_ran_and_left_its_notebook(smoke):
    st = read_stages(smoke.dir)["stages"]
    assert list(st) == list(STAGES), st
    for s in STAGES:
        assert (st[s]["status"], st[s]["action"]) == ("done", "ran"), (s, st[s])
        nb = nbformat.read(smoke.dir / st[s]["notebook"], as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, (s, errors)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)   # papermill injected after it

def test_run_record_and_outputs(smoke):
    d = smoke.dir
    assert (smoke.runs / "latest").resolve() == d.resolve()
    assert read_json(d / "env.json")["git"]["commit"] and (d / "preset.yaml").exists()
    for name in ("base", "sft", "dpo", "verifier"):
        assert (d / "checkpoints" / name / "config.json").exists(), name
    for rel in [p for outs in STAGE_OUTPUTS.values() for p in outs]: assert (d / rel).exists(), rel
    for m in ("base", "sft", "dpo", "verifier"): assert (d / "results" / f"{m}_eval.json").exists(), m

def test_sink_twin_is_trained_and_compared(smoke):
    d = smoke.dir                                                  # smoke sets train.pretrain.sink_twin
    base, twin = (read_json(d / "checkpoints" / n / "config.json")["model"] for n in ("base", "base_twin"))
    assert (base["sink"], twin["sink"]) == (True, False) and {**base, "sink": False} == twin
    rows = read_json(d / "results" / "sink_ablation.json")["rows"]
    assert [(r["model"], r["learned_sink"]) for r in rows] == [("base", True), ("base_twin", False)]
    for r in rows:
        assert 1 < r["ppl"] < 2048 and 0 < r["first_token_mass"] < 1 and r["pretrain_val_loss"] > 0, r
    assert 0 < rows[0]["learned_sink_mass"] < 1 and rows[1]["learned_sink_mass"] is None
    assert {"base", "sft", "dpo", "base_twin"} == set(read_json(d / "results" / "attention.json")["models"])
    assert "With and without the learned sink" in (d / "report" / "report.md").read_text()

def test_report_has_every_section_and_figure(smoke):
    rep = smoke.dir / "report"
    md = (rep / "report.md").read_text()
    assert [s for s in SECTIONS if f"## {s}" not in md] == []
    imgs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert imgs and [i for i in imgs if not (rep / i).exists()] == [], imgs
    assert (rep / "report.html").stat().st_size > 10_000
    assert (rep / "report.pdf").read_bytes()[:4] == b"%PDF"
    missing = read_json(rep / "report.json")["missing"]
    assert missing == [], f"a full run should leave no record missing: {missing}"

def test_resume_skips_every_stage(smoke):
    r, wall = speedrun(smoke.runs, "smoke", "smoke", "-p", "resume", "True")
    assert r.returncode == 0, r.stderr[-3000:]
    st = read_stages(smoke.dir)["stages"]
    assert {s: st[s]["action"] for s in STAGES} == {s: "skipped" for s in STAGES}
    assert all(st[s]["status"] == "done" and st[s]["wall_s"] > 0 for s in STAGES)   # the original wall times stay
    assert wall < 60, f"resume took {wall:.0f} s"

def test_base_checkpoint_replaces_pretraining(smoke, tmp_path):
    base = smoke.dir / "checkpoints" / "base"
    rd = start_run("smoke", "linked", tmp_path, [f"base_checkpoint={base}"])
    res = run_stages(rd, "pretrain", log=lambda s: None)
    assert [(r["stage"], r["action"]) for r in res] == [("pretrain", "linked")]
    assert (rd / "checkpoints/base/model.safetensors").stat().st_size == (base / "model.safetensors").stat().st_size
    rd = start_run("smoke", "mismatch", tmp_path, [f"base_checkpoint={base}", "model.d_model=128"])
    with pytest.raises(StageError, match=r"d_model \(64 vs 128\)"): run_stages(rd, "pretrain", log=lambda s: None)

def test_failing_stage_stops_the_run(tmp_path):
    boom = tmp_path / "boom.ipynb"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell('preset = "smoke"\nrun_dir = ""\noverrides = []', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("raise RuntimeError('deliberate stage failure')")]
    nbformat.write(nb, boom)
    r, wall = speedrun(tmp_path / "runs", "fails", "smoke", "-p", "stages", f"{boom},report")
    run = tmp_path / "runs" / "fails"
    assert r.returncode != 0
    assert f"stage 'boom' failed" in r.stderr and "RuntimeError: deliberate stage failure" in r.stderr, r.stderr[-3000:]
    assert str(run / "notebooks" / "boom.ipynb") in r.stderr and "speedrun failed" in r.stderr
    assert "deliberate stage failure" in (run / "notebooks" / "boom.ipynb").read_text()
    st = read_stages(run)["stages"]
    assert st["boom"]["status"] == "failed" and "report" not in st
    assert wall < 120, wall
