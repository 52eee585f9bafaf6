"""One change at a time: rerun one stage of a finished run from the same checkpoints with preset overrides, score it on
the run's held-out generated problems, and keep the result as a JSON line; the table of all of them lives in a doc.

    python bench/ablate.py run runs/<id> dpo beta-0.5 train.dpo.beta=0.5     # rerun DPO from the run's SFT model
    python bench/ablate.py baseline runs/<id> dpo                             # the run's own DPO, scored the same way
    python bench/ablate.py table [--check]                                    # rewrite (check) the tables in docs/cpu_hour.md

`run` works in `runs/ablations/<run>-<stage>-<name>/`: the run's earlier checkpoints are linked, its held-out record
copied (so a change that trains on a held-out problem still fails), the stage runs through the CLI
(`modern-llm train <stage> --preset <run>/preset.yaml ...`), and the result is appended to
`bench/results/cpu_hour_ablations.jsonl` with the commit, device and date. Scores: SFT and DPO on the evaluation's
held-out generated problems (greedy EM, pass@1, maj@N, with 95% intervals; DPO also its held-out preference accuracies);
the verifier from its `verifier_eval.json` (held-out ROC-AUC, reranking of the same candidates at the largest N).
Bad input (a missing run or file, an unknown override, a malformed results line) is one line naming it, exit 2; an
earlier scratch folder of the same change is kept as `<name>.previous` until the new rerun has finished.
"""
import argparse, datetime, json, os, platform, shlex, shutil, subprocess, sys, time
from pathlib import Path
import torch
from modern_llm.checkpoint import load_model
from modern_llm.config import load_preset, repo_root
from modern_llm.errors import ModernLLMError, RecordError
from modern_llm.evaluate import gsm8k_eval, wilson_interval
from modern_llm.generate import Engine
from modern_llm.report import Records
from modern_llm.report_headline import intervals_apart, paired_rows, paired_sign, with_interval
from modern_llm.runs import read_json
from modern_llm.synth_math import synth_gsm

INPUTS = {"sft": ["base"], "dpo": ["base", "sft"], "verifier": ["base", "sft", "dpo"]}   # checkpoints a stage starts from
OUT = repo_root() / "bench" / "results" / "cpu_hour_ablations.jsonl"
DOC = repo_root() / "docs" / "cpu_hour.md"
MARKERS = ("<!-- ablations -->", "<!-- /ablations -->")
TARGET_MARKERS = ("<!-- targets -->", "<!-- /targets -->")
RECORD = repo_root() / "paper" / "results" / "cpu_hour"


ROW_KEYS = ("name", "stage", "overrides", "source_run", "commit", "date", "scores")


class AblationError(RecordError):
    "Bad input (a missing run or file, a malformed results line): one line, exit 2, like every `ModernLLMError`."


def git_commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=repo_root())
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "modern_llm", "params", "bench/ablate.py"], capture_output=True, text=True, cwd=repo_root()).stdout.strip()
    return r.stdout.strip() + (" (uncommitted changes)" if dirty else "")


def policy_scores(ckpt: Path, preset) -> dict:
    "Greedy EM, pass@1, maj@N of a policy on the evaluation's held-out generated problems (`eval.synth_subset`), with intervals."
    ev = preset.eval
    model, tok, _ = load_model(ckpt)
    g = gsm8k_eval(Engine(model, tok), synth_gsm("test", ev.synth_subset), max_new_tokens=ev.max_new_tokens, n_samples=ev.n_samples,
                   pass_k=ev.pass_k, temperature=ev.temperature, top_k=ev.top_k, top_p=ev.top_p, calculator=ev.calculator,
                   batch_size=ev.batch_size)
    keys = ["em_strict", "pass@1", f"maj@{ev.n_samples}", f"pass@{ev.n_samples}"]
    return {"problems": g["n_problems"], **{k: round(g[k], 4) for k in keys}, **{f"{k}_ci": [round(x, 4) for x in g[f"{k}_ci"]] for k in keys}}


def stage_scores(run_dir: Path, stage: str, preset) -> dict:
    if stage == "verifier":
        v = read_json(run_dir / "results" / "verifier_eval.json")
        return {"auc": v["heldout"].get("auc"), "auc_policy_samples": v["heldout"].get("auc_policy_samples"), "heldout_rows": v["heldout"].get("n"),
                "within_problem_auc": (v.get("breakdown") or {}).get("within_problem_auc"),
                "rerank_n": v["curves"]["n"][-1], **{r["key"]: round(r["em"], 4) for r in v["reranking"]}}
    f, n = run_dir / "results" / f"{stage}_eval.json", preset.eval.n_samples
    keys = ["em_strict", "pass@1", f"maj@{n}", f"pass@{n}"]
    if f.exists():   # the evaluate stage scored this policy with the same protocol (same problems, seeds, settings)
        r = read_json(f)
        name = lambda k: "synth_em" if k == "em_strict" else f"synth_{k}"
        out = {"problems": r["synth_subset"], **{k: round(r[name(k)], 4) for k in keys}, **{f"{k}_ci": [round(x, 4) for x in r[f"{name(k)}_ci"]] for k in keys}}
    else: out = policy_scores(run_dir / "checkpoints" / stage, preset)
    if stage == "dpo":
        s = read_json(run_dir / "results" / "dpo_summary.json")
        out |= {"hh_pref_acc": s["heldout_preference_accuracy"].get("dpo"), "math_pref_acc": s["heldout_math_preference_accuracy"].get("dpo")}
    return out


def record(row: dict):
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "a") as f: f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


def _row(src: Path, stage: str, name: str, overrides: list[str], scores: dict, wall: float, commit: str | None = None) -> dict:
    return {"name": name, "stage": stage, "overrides": overrides, "source_run": src.name, "commit": commit or git_commit(),
            "device": f"CPU ({os.cpu_count()} cores), torch {torch.__version__}", "host": platform.node(),
            "date": datetime.date.today().isoformat(), "wall_s": round(wall, 1), "scores": scores}


def _source_run(src: Path, stage: str) -> Path:
    "The finished run `src`, checked for what a rerun of `stage` needs (raises AblationError naming the first missing file)."
    src = src.resolve()
    if not src.is_dir(): raise AblationError(f"{src}: no such run folder (a finished run's runs/<id>)")
    need = ["preset.yaml", "env.json", "tokenizer.json", "results/heldout.json", *(f"checkpoints/{c}" for c in INPUTS[stage])]
    for rel in need:
        if not (src / rel).exists(): raise AblationError(f"{src / rel}: missing (rerunning {stage} needs it)")
    return src


def run(src: Path, stage: str, name: str, overrides: list[str]):
    src = _source_run(src, stage)
    preset_file = src / "preset.yaml"
    preset = load_preset(preset_file, overrides)   # an unknown key or a bad value fails here, before any scratch is touched
    work = repo_root() / "runs" / "ablations" / f"{src.name}-{stage}-{name}"
    old = work.with_name(work.name + ".previous")
    if work.exists():                              # our own scratch from an earlier try: kept until this one has finished
        shutil.rmtree(old, ignore_errors=True); os.replace(work, old)
    (work / "checkpoints").mkdir(parents=True)
    (work / "results").mkdir()
    for c in INPUTS[stage]: os.symlink(src / "checkpoints" / c, work / "checkpoints" / c)
    shutil.copy2(src / "tokenizer.json", work / "tokenizer.json")
    shutil.copy2(src / "results" / "heldout.json", work / "results" / "heldout.json")
    if stage == "verifier" and (src / "results" / "dpo_synth.jsonl").exists():   # the same candidates to rerank
        shutil.copy2(src / "results" / "dpo_synth.jsonl", work / "results" / "dpo_synth.jsonl")
    if stage == "dpo" and (src / "cache" / "dpo_ref_logps.json").exists():       # reused only when its key still matches
        (work / "cache").mkdir(); shutil.copy2(src / "cache" / "dpo_ref_logps.json", work / "cache" / "dpo_ref_logps.json")
    t0, commit = time.time(), git_commit()        # the code the stage runs with, not what is checked out when it ends
    cli = [sys.executable, "-c", "import sys; from modern_llm.cli import main; sys.exit(main(sys.argv[1:]))"]   # the `modern-llm` command
    cmd = [*cli, "train", stage, "--run-dir", str(work), "--preset", str(preset_file), *overrides]
    rc = subprocess.run(cmd).returncode
    if rc: sys.exit(rc)                            # the CLI has said why in one line (exit 2 for bad input)
    record(_row(src, stage, name, overrides, stage_scores(work, stage, preset), time.time() - t0, commit))
    shutil.rmtree(old, ignore_errors=True)


def baseline(src: Path, stage: str):
    src = _source_run(src, stage)
    t0 = time.time()
    git = read_json(src / "env.json").get("git") or {}   # the numbers are the run's: its commit, not today's
    commit = (git.get("commit") or "unknown")[:7] + (" (uncommitted changes)" if git.get("dirty") else "")
    record(_row(src, stage, "as run", [], stage_scores(src, stage, load_preset(src / "preset.yaml")), time.time() - t0, commit))


def fmt_ci(s: dict, k: str) -> str: return with_interval(s.get(k), s.get(f"{k}_ci"))   # the report's own format


def table(rows: list[dict]) -> str:
    "Markdown: one table per stage, the latest row per (stage, name), then the commands that made them."
    out, latest = [], {}
    for r in rows: latest[(r["source_run"], r["stage"], r["name"])] = r
    groups = dict.fromkeys((run, s) for run, s, _ in latest)
    for run, stage in sorted(groups, key=lambda g: (g[0], list(INPUTS).index(g[1]))):
        rs = sorted((r for (u, s, _), r in latest.items() if (u, s) == (run, stage)), key=lambda r: r["name"] != "as run")   # the bar first
        if stage == "verifier":
            n = rs[0]["scores"].get("rerank_n")
            head = ["change", "held-out AUC (rows)", "AUC (policy samples)", "within-problem AUC", "greedy (flexible)", f"verifier top-1 of {n}", "verifier vote", f"maj@{n}", f"pass@{n}"]
            cells = lambda s: [(f"{s['auc']:.3f}" + (f" ({s['heldout_rows']})" if s.get("heldout_rows") else "")) if s.get("auc") is not None else "",
                               f"{s['auc_policy_samples']:.3f}" if s.get("auc_policy_samples") is not None else "",
                               f"{s['within_problem_auc']:.3f}" if s.get("within_problem_auc") is not None else "",
                               *[f"{s[k]:.3g}" if s.get(k) is not None else "" for k in ("greedy", "verifier_top1", "verifier_vote", "majority", "pass")]]
        else:
            ks = [k for k in rs[0]["scores"] if k.startswith(("maj@", "pass@")) and not k.endswith("_ci") and k != "pass@1"]
            head = ["change", "EM", "pass@1", *ks] + (["HH pref. acc.", "math pref. acc."] if stage == "dpo" else [])
            cells = lambda s: [fmt_ci(s, "em_strict"), fmt_ci(s, "pass@1"), *[fmt_ci(s, k) for k in ks]] + (
                [f"{s['hh_pref_acc']:.3f}" if s.get("hh_pref_acc") is not None else "", f"{s['math_pref_acc']:.3f}" if s.get("math_pref_acc") is not None else ""] if stage == "dpo" else [])
        out += [f"**{stage.upper() if stage != 'verifier' else 'Verifier'}** (from the checkpoints of `{rs[0]['source_run']}`)", "",
                "| " + " | ".join(head + ["commit, date"]) + " |", "|" + "---|" * (len(head) + 1)]
        for r in rs:
            change = " ".join(f"`{o}`" for o in r["overrides"]) or r["name"]
            out.append("| " + " | ".join([change, *cells(r["scores"]), f"`{r['commit']}`, {r['date']}"]) + " |")   # wall_s stays in the JSON: some ran beside another run
        out.append("")
    out += ["Commands (from the repository root; `baseline` scores the run's own stage the same way). The run folders are local",
            "(`runs/` is not committed): to rerun a row, make a run of your own with `bash speedrun.sh cpu_hour` and give its",
            "`runs/<id>` in place of the one named.", "", "```bash"]
    out += [f"python bench/ablate.py baseline runs/{r['source_run']} {r['stage']}" if r["name"] == "as run" else
            f"python bench/ablate.py run runs/{r['source_run']} {r['stage']} {shlex.join([r['name'], *r['overrides']])}"
            for r in latest.values()]
    return "\n".join(out + ["```"])


def compared(new: float, old: float, new_ci, old_ci, strict: bool, paired: dict | None = None) -> bool | str:
    """Met (True/False) for "new above old" (`strict`) or "new not below old". With `paired` (an `evaluate.paired_difference`
    row: the same problems, problem by problem) the cell says what its 95% interval shows; without one, when the two 95%
    intervals overlap the point comparison is not a measured difference and the cell says so instead of a bare yes or no."""
    ok = new > old if strict else new >= old
    if paired:
        (lo, hi), d = paired["ci"], paired["diff"]
        diff = f"paired difference {d:+.3f} [{lo:+.3f}, {hi:+.3f}] over the same {paired['n']} problems"
        if sign := paired_sign(paired): return f"{'yes' if sign > 0 else '**no**'}: {diff}"   # the report's own rule (11a)
        return f"{'yes' if ok else 'no'} by the point values; the {diff} includes 0 (no difference shown)"
    if intervals_apart(new_ci, old_ci) is False:   # the report's own rule (11a_report_headline)
        return f"{'yes' if ok else 'no'} by the point values; the intervals overlap (no difference shown)"
    return ok


def targets(rec: Path) -> str:
    "Markdown: each target of the cpu_hour issue against the committed record's numbers (measured, 95% interval, met or not)."
    j = lambda rel: read_json(rec / rel)
    ev = {s: j(f"results/{s}_eval.json") for s in ("base", "sft", "dpo")}
    dpo, ver, stages = j("results/dpo_summary.json"), j("results/verifier_eval.json"), j("stages.json")["stages"]
    pairs = paired_rows(Records(rec))                                  # the report's own paired differences
    vp = {(p["new"], p["old"]): p for p in ver.get("paired", [])}
    n = ver["curves"]["n"][-1]
    rr = {r["key"]: r["em"] for r in ver["reranking"]}
    ci = lambda s, k: ev[s].get(f"{k}_ci")
    iv = lambda c: f"[{c[0]:.2f}, {c[1]:.2f}]" if c else ""
    wall = sum(s["wall_s"] for s in stages.values()) / 60
    hh, h = dpo["heldout_preference_accuracy"], ver["heldout"]
    hh_ci = wilson_interval(round(hh["dpo"] * dpo["pairs"]["holdout"]), dpo["pairs"]["holdout"])   # a proportion of pairs
    rows = [
        ("Base: WikiText-2 bits per byte below the unigram baseline", f"{ev['base']['bpb']:.3f} vs unigram {ev['base']['unigram_bpb']:.3f}", "", ev["base"]["bpb"] < ev["base"]["unigram_bpb"]),
        ("SFT: generated-problem EM >= Base + 0.3", f"{ev['sft']['synth_em']:.3f} vs {ev['base']['synth_em']:.3f}", f"{iv(ci('sft', 'synth_em'))} vs {iv(ci('base', 'synth_em'))}",
         ev["sft"]["synth_em"] >= ev["base"]["synth_em"] + 0.3),
        ("DPO: generated-problem EM not lower than SFT's", f"{ev['dpo']['synth_em']:.3f} vs {ev['sft']['synth_em']:.3f}", f"{iv(ci('dpo', 'synth_em'))} vs {iv(ci('sft', 'synth_em'))}",
         compared(ev["dpo"]["synth_em"], ev["sft"]["synth_em"], ci("dpo", "synth_em"), ci("sft", "synth_em"), strict=False, paired=pairs.get(("DPO", "SFT", "synth_em")))),
        ("DPO: generated-problem pass@1 higher than SFT's", f"{ev['dpo']['synth_pass@1']:.3f} vs {ev['sft']['synth_pass@1']:.3f}",
         f"{iv(ci('dpo', 'synth_pass@1'))} vs {iv(ci('sft', 'synth_pass@1'))}",
         compared(ev["dpo"]["synth_pass@1"], ev["sft"]["synth_pass@1"], ci("dpo", "synth_pass@1"), ci("sft", "synth_pass@1"), strict=True, paired=pairs.get(("DPO", "SFT", "synth_pass@1")))),
        ("DPO: held-out HH-RLHF preference accuracy above SFT's 0.5 (aim >= 0.6)", f"{hh['dpo']:.3f} vs {hh['sft']:.3f}",
         f"{iv(hh_ci)}, {dpo['pairs']['holdout']} pairs",
         f"{'yes' if hh['dpo'] > hh['sft'] else 'no'} by the point values; the interval includes {hh['sft']} (no difference shown)" if hh_ci[0] <= hh["sft"] <= hh_ci[1] else hh["dpo"] > hh["sft"]),
        ("Verifier: ROC-AUC >= 0.8 on held-out problems: the policy's samples (what reranking ranks); all held-out rows beside it",
         f"{h['auc_policy_samples']:.3f}; all rows {h['auc']:.3f}", f"{ver['data']['label_mix_val']['sample']['rows']} samples; {h.get('n', '')} rows (with the constructed wrong solutions)",
         h["auc_policy_samples"] >= 0.8),
        (f"Verifier: top-1 of {n} above greedy EM", f"{rr['verifier_top1']:.3f} vs {rr['greedy']:.3f}", f"{ver['test']['problems']} problems",
         compared(rr["verifier_top1"], rr["greedy"], None, None, strict=True, paired=vp.get(("verifier_top1", "greedy")))),
        (f"Verifier: top-1 of {n} above maj@{n} (pass@{n} {rr['pass']:.3f} is the ceiling)", f"{rr['verifier_top1']:.3f} vs {rr['majority']:.3f}", "",
         compared(rr["verifier_top1"], rr["majority"], None, None, strict=True, paired=vp.get(("verifier_top1", "majority")))),
        (f"Verifier (beside the targets): weighted vote of {n} above maj@{n}", f"{rr['verifier_vote']:.3f} vs {rr['majority']:.3f}", "",
         compared(rr["verifier_vote"], rr["majority"], None, None, strict=True, paired=vp.get(("verifier_vote", "majority")))),
        ("Whole run <= 75 min on 2 CPU cores", f"{wall:.1f} min", "", wall <= 75),
    ]
    out = [f"From the committed record `{rec.relative_to(repo_root())}`; rewritten by `python bench/ablate.py table`.", "",
           "| target | measured | 95% interval / size | met |", "|---|---|---|---|"]
    met = lambda ok: ok if isinstance(ok, str) else "yes" if ok else "**no**"
    return "\n".join(out + [f"| {t} | {m} | {c} | {met(ok)} |" for t, m, c, ok in rows])


def _replace_block(text: str, markers, body: str) -> str:
    a, b = markers
    if a not in text or b not in text: raise AblationError(f"{DOC}: no {a} ... {b} block")
    head, rest = text.split(a, 1)
    return head + a + "\n" + body + "\n" + b + rest.split(b, 1)[1]


def ablation_rows(path: Path = OUT) -> list[dict]:
    "The recorded ablations; raises AblationError naming `file:line` for a line that is not a JSON row with `ROW_KEYS`, or when there is none."
    if not path.exists(): raise AblationError(f"{path}: missing (the ablation tables are rendered from it)")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip(): continue
        try: row = json.loads(line)
        except json.JSONDecodeError as e: raise AblationError(f"{path}:{i}: not valid JSON ({e.msg}, column {e.colno})") from None
        missing = [k for k in ROW_KEYS if k not in row] if isinstance(row, dict) else ["(not an object)"]
        if missing: raise AblationError(f"{path}:{i}: missing key {missing[0]!r}")
        rows.append(row)
    if not rows: raise AblationError(f"{path}: no ablation rows (the tables would be emptied)")
    return rows


def rendered_doc() -> str:
    "docs/cpu_hour.md with both blocks rendered from `bench/results/cpu_hour_ablations.jsonl` and the committed record."
    rows = ablation_rows()
    text = _replace_block(DOC.read_text(), MARKERS, table(rows))
    return _replace_block(text, TARGET_MARKERS, targets(RECORD)) if (RECORD / "stages.json").exists() else text


def write_table(check: bool = False) -> int:
    text = rendered_doc()
    if check:
        stale = text != DOC.read_text()
        print(f"{DOC}: {'stale (run: python bench/ablate.py table)' if stale else 'current'}")
        return int(stale)
    if text == DOC.read_text(): print(f"{DOC}: already current"); return 0
    tmp = DOC.with_suffix(".tmp")
    tmp.write_text(text); os.replace(tmp, DOC)
    print(f"{DOC}: rewritten")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run"); r.add_argument("run_dir", type=Path); r.add_argument("stage", choices=list(INPUTS)); r.add_argument("name"); r.add_argument("overrides", nargs="*")
    b = sub.add_parser("baseline"); b.add_argument("run_dir", type=Path); b.add_argument("stage", choices=list(INPUTS))
    t = sub.add_parser("table"); t.add_argument("--check", action="store_true", help="exit 1 when the doc is stale; write nothing")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "run": run(a.run_dir, a.stage, a.name, a.overrides)
        elif a.cmd == "baseline": baseline(a.run_dir, a.stage)
        else: sys.exit(write_table(a.check))
    except (ModernLLMError, FileNotFoundError) as e:   # bad input: one line naming the file, line or key
        print(f"ablate: error: {e}", file=sys.stderr); sys.exit(2)


if __name__ == "__main__":
    main()
