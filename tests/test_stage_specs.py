"""Extension points declared in code (issue 15 §4): each `StageSpec` names its inputs, outputs and what it needs, and the
pipeline uses them: a missing input stops the run before any stage, and a stage that does not write its outputs fails."""
import sys, types
from dataclasses import dataclass

import pytest

from cai_workbench import pipeline as P
from cai_workbench.core.config import ConfigBase
from cai_workbench.core.run import MissingStageError, Run
from cai_workbench.pipeline import STAGES, PipelineConfig, run_pipeline
from cai_workbench.stages.preferences import PreferencesConfig
from cai_workbench.stages.probe import ProbeConfig
from cai_workbench.stages.reward_model import RewardModelConfig


@dataclass
class _Cfg(ConfigBase):
    lr: float = 1.0


class _Done:
    "What a stage returns (`core.run.StageResult`): the pipeline keeps its summary in the manifest."
    def summary(self) -> dict: return {"ok": 1}


def _stage(name, writes, calls, result=_Done):
    def runner(run, cfg, model="tiny", progress=True):
        calls.append(name)
        with run.stage(name) as d:
            for rel in writes: (run.path/rel).write_text(name)
        return result() if result else None
    return runner


@pytest.fixture
def stages(monkeypatch):
    calls = []
    mod = types.ModuleType("spec_stages"); mod.Cfg = _Cfg
    mod.run_a = _stage("critique_revision", ["critique_revision/data.jsonl"], calls)
    mod.run_b = _stage("sft", [], calls)                                   # promises sft/adapter, writes nothing
    mod.run_c = _stage("dpo", ["dpo/out.txt"], calls)
    monkeypatch.setitem(sys.modules, "spec_stages", mod)
    monkeypatch.setattr(P, "STAGES", {
        "critique_revision": P.StageSpec("critique_revision", "spec_stages", "Cfg", "run_a", outputs=("critique_revision/data.jsonl",)),
        "sft": P.StageSpec("sft", "spec_stages", "Cfg", "run_b", ("critique_revision/data.jsonl",), ("sft/adapter",),
                           needs=("critique_revision/data.jsonl",)),
        "dpo": P.StageSpec("dpo", "spec_stages", "Cfg", "run_c", ("sft/adapter",), ("dpo/out.txt",), needs=lambda c: ("sft/adapter",) if c.lr > 0 else ())})
    return calls


def test_a_missing_input_stops_the_run_before_any_stage(tmp_path, stages):
    cfg = PipelineConfig.from_dict({"model": "tiny", "stages": ["critique_revision", "sft", "dpo"]})
    with pytest.raises(MissingStageError, match="stage sft needs critique_revision/data.jsonl.*run the critique_revision stage first"):
        run_pipeline(cfg, run_dir=tmp_path/"r", stages=["sft", "dpo"], progress=False)
    assert stages == [] and Run(tmp_path/"r").stage_info("sft")["status"] == "failed"
    # an input that a stage selected before it writes is fine; what `needs` asks for can depend on the stage's config
    with pytest.raises(MissingStageError, match="stage dpo needs sft/adapter"):
        run_pipeline(cfg, run_dir=tmp_path/"r2", stages=["critique_revision", "dpo"], progress=False)
    assert stages == []
    run_pipeline(PipelineConfig.from_dict({"model": "tiny", "stages": ["dpo"], "dpo": {"lr": -1.0}}), run_dir=tmp_path/"r3", progress=False)
    assert stages == ["dpo"]


def test_a_stage_that_does_not_write_its_outputs_fails(tmp_path, stages):
    cfg = PipelineConfig.from_dict({"model": "tiny", "stages": ["critique_revision", "sft"]})
    with pytest.raises(RuntimeError, match=r"stage sft finished without writing \['sft/adapter'\].*spec_stages.run_b"):
        run_pipeline(cfg, run_dir=tmp_path/"r", progress=False)
    m = Run(tmp_path/"r").manifest["stages"]
    assert m["critique_revision"]["status"] == "done" and m["sft"]["status"] == "failed"


def test_a_stage_that_returns_no_stage_result_fails(tmp_path, stages, monkeypatch):
    "The pipeline relies on the `StageResult` contract (`summary() -> dict`), not on `hasattr` checks."
    monkeypatch.setattr(sys.modules["spec_stages"], "run_a", _stage("critique_revision", ["critique_revision/data.jsonl"], stages, result=None))
    with pytest.raises(TypeError, match="spec_stages.run_a returned NoneType, not a StageResult"):
        run_pipeline(PipelineConfig.from_dict({"model": "tiny", "stages": ["critique_revision"]}), run_dir=tmp_path/"r", progress=False)
    assert Run(tmp_path/"r").stage_info("critique_revision")["status"] == "failed"
    res = run_pipeline(PipelineConfig.from_dict({"model": "tiny", "stages": ["dpo"], "dpo": {"lr": -1.0}}), run_dir=tmp_path/"r2", progress=False)
    assert Run(tmp_path/"r2").stage_info("dpo")["summary"] == {"ok": 1} and isinstance(res.results["dpo"], P.StageResult)


def test_every_stage_runner_returns_a_stage_result():
    import typing
    for name, spec in STAGES.items():
        _, runner = spec.load()
        ret = typing.get_type_hints(runner)["return"]
        assert callable(getattr(ret, "summary", None)), f"{spec.module}.{spec.runner} returns {ret}, which has no summary()"


def test_what_the_real_stages_need_follows_their_config():
    assert STAGES["preferences"].required(PreferencesConfig()) == ("critique_revision/records.jsonl",)
    assert STAGES["preferences"].required(PreferencesConfig(sources=["sampled"])) == ()
    assert STAGES["reward_model"].required(RewardModelConfig(pairs="my_pairs.jsonl")) == ()
    assert STAGES["probe"].required(ProbeConfig(reward_model=False)) == ("evaluation/responses.jsonl",)
    made = {o for s in STAGES.values() for o in s.outputs}
    assert all(i in made for s in STAGES.values() for i in s.inputs)          # every input is some stage's output
