"Issue 32 item 7: hostile inputs — YAML bombs refused in every YAML the project reads, and data strings escaped in every repr."
import re, time

import pytest

from cai_workbench.cli import main
from cai_workbench.core.config import ConfigError

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))  # 9**9 values


@pytest.fixture
def bomb(tmp_path):
    p = tmp_path/"bomb.yaml"
    p.write_text("model: tiny\nstages: [sft]\n" + LAUGHS.replace("a:", "x_a:", 1))
    return p



def test_billion_laughs_config_is_refused_quickly_by_the_cli(bomb, tmp_path, capsys):
    t0 = time.time()
    assert main(["run", str(bomb), "--run-dir", str(tmp_path/"r")]) == 2
    assert time.time() - t0 < 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bomb) in err and "aliases expand" in err, err
    assert not (tmp_path/"r").exists()


def test_billion_laughs_in_every_yaml_reader(tmp_path):
    from cai_workbench.core.config import _read_yaml_mapping
    from cai_workbench.core.run import Run
    from cai_workbench.inputs.constitution import ConstitutionError, load_constitution
    from cai_workbench.launch.sweeps import _load_sweep
    from cai_workbench.pipeline import PipelineConfig
    p = tmp_path/"b.yaml"; p.write_text(LAUGHS)
    for read, exc in [(_read_yaml_mapping, ConfigError), (PipelineConfig.from_yaml, ConfigError),
                      (load_constitution, ConstitutionError), (_load_sweep, ConfigError)]:
        t0 = time.time()
        with pytest.raises(exc, match="aliases expand") as e: read(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value) and time.time() - t0 < 2, read
    run = tmp_path/"run"; run.mkdir(); (run/"config.yaml").write_text(LAUGHS)   # a pulled run folder's config
    with pytest.raises(ConfigError, match="aliases expand"): PipelineConfig.from_yaml(run/"config.yaml")


def test_recursive_and_deep_yaml_refused_naming_the_file(tmp_path):
    from cai_workbench.pipeline import PipelineConfig
    p = tmp_path/"c.yaml"
    for text, why in [("model: &m [tiny, *m]\n", "refers to itself"), ("model: " + "[" * 3000 + "]" * 3000, "deeper than")]:
        p.write_text(text)
        with pytest.raises(ConfigError, match=why) as e: PipelineConfig.from_yaml(p)
        assert str(p) in str(e.value)


# --- item 7b: strings from data (prompt sources, run-folder and stage names, principle names...) never become HTML ----
IMG = "<img src=x onerror=alert(1)>"
LINK = "[click](https://evil.example/x) ![t](https://evil.example/p.png)"
BAD = f"{IMG} {LINK} `tick` a|b"


def assert_inert(out: str, where: str, html: bool = False):
    "Rendered as a notebook renders it (Markdown with raw HTML on), the payload is text: no tag, link or code span from it."
    from markdown_it import MarkdownIt
    page = out if html else MarkdownIt("commonmark", {"html": True}).enable("table").render(out)
    assert "<img" not in page and "<script" not in page, f"{where}: raw HTML in {page!r}"
    assert not re.search(r'<a [^>]*href="https://evil', page), f"{where}: a live link in {page!r}"
    assert "<code>tick</code>" not in page, f"{where}: a live code span in {page!r}"
    assert "a|b" in page, f"{where}: the payload is not shown whole (a pipe split a table cell?) in {page!r}"


def _run(tmp_path):
    from cai_workbench.core.run import Run
    run = Run.create(tmp_path/IMG.replace("/", ""), config={"name": "x"})
    run.update_manifest(stages={BAD: {"status": BAD, "wall_s": 1.0, "summary": {"source": BAD, BAD: 1}}})
    return run


def _critique(tmp_path):
    from cai_workbench.stages.critique_revision import CritiqueResult
    rec = lambda src: {"total_tokens": 3, "final_response": "a", "initial_response": "b", "stop_reason": "rounds",
                       "rounds": [{"principle": BAD}], "n_rounds": 1, "source": src}
    return CritiqueResult(tmp_path/IMG, [rec(BAD), rec("demo")])


def _comparison(keys):
    from cai_workbench.launch.sweeps import Comparison
    row = {"run": BAD, "stage": BAD, "harmless": 0.5, "harmless_ci": [0.4, 0.6], "n_harmful": 4, "helpful": None, "helpful_ci": None,
           "n_benign": 0, "win_rate_vs_base": None, "config": {k: BAD for k in keys}}
    return Comparison([row], keys)


def _objects(tmp_path):
    from cai_workbench.core.cloud import SyncSummary
    from cai_workbench.inputs.constitution import Constitution, Principle
    from cai_workbench.judges.ai import EloResult
    from cai_workbench.judges.rules import AgreementReport
    from cai_workbench.pipeline import PipelineResult
    from cai_workbench.stages.dpo import DPOResult
    from cai_workbench.stages.ppo import PPOResult
    from cai_workbench.stages.preferences import PreferenceResult
    from cai_workbench.stages.reward_model import RewardResult
    from cai_workbench.stages.rloo_grpo import RLComparison, RLResult
    from cai_workbench.stages.sft import SFTResult
    run = _run(tmp_path)
    yield "Run", run
    yield "PipelineResult", PipelineResult(run, stale={BAD: [BAD]})
    yield "CritiqueResult", _critique(tmp_path)
    yield "Comparison", _comparison(["a"])
    yield "Comparison (wide)", _comparison(["a", "b", "c", "d", BAD])
    yield "Constitution", Constitution(BAD, principles=[Principle(name=BAD, critique_request=BAD, revision_request=BAD, comparison_question=BAD)],
                                       description=BAD, version=BAD)
    yield "SyncSummary", SyncSummary("push", BAD, BAD, copied=[BAD], excluded_secrets=[BAD], failed={BAD: BAD}, too_large=[BAD])
    yield "PreferenceResult", PreferenceResult(tmp_path/IMG, 2, {BAD: 2}, {"a": 1}, 1.0, 0.5, None, BAD)
    yield "SFTResult", SFTResult(tmp_path/IMG, {"examples": 1, "steps": 1, "first_loss": 1.0, "last_loss": 1.0, "wall_s": 1, "device": BAD})
    yield "DPOResult", DPOResult(2, {BAD: 1}, 1, 1.0, 1.0, 0.5, 0.1, 0.0, 1.0, BAD, BAD)
    yield "RLResult", RLResult(tmp_path/IMG, BAD, [{"step": 1, "reward_mean": 0.1}], 1.0, 1.0)
    yield "RLComparison", RLComparison([{"method": BAD, "updates": 1}])
    yield "PPOResult", PPOResult(tmp_path/IMG, [{"update": 1, "reward_mean": 0.1}], 1.0, 1.0, method=BAD)
    yield "RewardResult", RewardResult(tmp_path/IMG, {"n_train": 1, "wall_s": 1.0, "human_skipped": BAD})
    yield "EloResult", EloResult({BAD: 1000.0}, {BAD: None}, 1, None)
    yield "AgreementReport", AgreementReport(f"/x/{BAD}.csv", 1, 1, 1.0, 1.0, {})
    from pathlib import Path
    from cai_workbench.core.environment import describe_environment
    from cai_workbench.inputs.data_filters import FilterReport
    from cai_workbench.launch.estimate import Estimate
    from cai_workbench.launch.sagemaker import SageMakerJob
    from cai_workbench.stages.evaluation import EvalResult
    from cai_workbench.stages.probe import ProbeResult
    yield "EvalResult", EvalResult({"stages": [], "metrics": {}, "n_prompts": BAD, "conclusions": {BAD: BAD}, "judge_note": BAD}, report=Path(BAD))
    yield "ProbeResult", ProbeResult({"property": BAD, "description": BAD, "passed": False, "n_prompts": 2,
                                      "stages": {"base": {"rate": 0.5, "rate_ci": [0.1, 0.9], "rate_n": 2}}})
    from cai_workbench.launch.plan import Plan
    yield "Plan", Plan(BAD, BAD, 1, 24.0, 0.9, BAD, 10**9, [{"stage": BAD, "peak": 3e10, "parts": {BAD: 2e10, f"judge model {BAD}": 1e10},
                       "settings": {}, "fits": False, "fix": ({f"{BAD}.batch_size": 1}, 1e9), "tokens": 1, "wall_s": None, "usd": None,
                       "rate": BAD}], notes=[BAD])
    env = describe_environment("cpu"); env.packages = {BAD: BAD}
    yield "EnvironmentInfo", env
    yield "Estimate", Estimate(BAD, [{"stage": BAD, "tokens": 1, "wall_s": None, "usd": None, "rate": BAD}], None, [BAD])
    yield "SageMakerJob", SageMakerJob(BAD, BAD, BAD, Path(BAD), "us-east-1", status=BAD, failure_reason=BAD)
    yield "FilterReport", FilterReport(BAD, [], [{"id": BAD, "filter": BAD, "detail": BAD, "prompt": BAD, "answers": [BAD]}], 1)


def test_every_repr_escapes_strings_from_data(tmp_path):
    seen = []
    for name, obj in _objects(tmp_path):
        for meth in ("_repr_markdown_", "_repr_html_"):
            if hasattr(obj, meth):
                out = getattr(obj, meth)()
                assert_inert(out, f"{name}.{meth}", html=meth == "_repr_html_"); seen.append(name)
    assert len(set(seen)) >= 23, sorted(set(seen))


def test_pipeline_repr_shows_the_payload_as_text(tmp_path):
    "Escaped, not dropped: a user still sees the odd stage name, as text."
    from cai_workbench.pipeline import PipelineResult
    md = PipelineResult(_run(tmp_path))._repr_markdown_()
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "\\[click\\](https://evil.example/x)" in md
