"""Issue 32, items 1-4: no value read from a run folder or config places a file outside its folder (a planted PPO `state.json`,
also pulled from a bucket; run, sweep and principle names), and no data is lost to a kill during a from-scratch rerun, to a forced
preferences rerun (human decisions) or to a user's own folder given as the run folder."""
import json, os, shutil, signal, socket, subprocess, sys, time
from pathlib import Path

import pytest
import yaml

from cai_workbench.cli import main
from cai_workbench.core.config import ConfigError
from cai_workbench.core.run import Run

OLD_RUN = Path(__file__).parent/"data"/"run-before-layout"      # critique_revision, sft, preferences, reward_model of `tiny`
PLANT = {"update": "x/../../../../ESCAPED"}


def _files(d: Path) -> dict:
    "{relative path: bytes} of every file under `d`."
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(Path(d).rglob("*")) if p.is_file()}


def _escaped(root: Path) -> list:
    return [p for p in root.rglob("*ESCAPED*")]


def _plant(rd: Path, state: dict) -> Path:
    ck = rd/"ppo"/"checkpoint"; ck.mkdir(parents=True)
    (ck/"state.json").write_text(json.dumps(state)); (ck/"tensors.safetensors").write_bytes(b"payload from a shared bucket")
    return ck


# --- 1. path traversal ------------------------------------------------------------------------------------------------
def test_planted_old_layout_update_is_refused_and_nothing_moves(tmp_path):
    from cai_workbench.stages.ppo import _adopt_old_layout
    rd = Run.create(tmp_path/"box"/"run").path
    for state in (PLANT, {}, {"update": 2.5}, {"update": True}, [1]):
        ck = _plant(rd, {"update": 0}); (ck/"state.json").write_text(json.dumps(state))
        before = _files(tmp_path)
        with pytest.raises(ConfigError) as ei: _adopt_old_layout(rd/"ppo", rd/"ppo"/"checkpoints")
        msg = str(ei.value)
        assert "\n" not in msg and str(ck/"state.json") in msg and "update=" in msg, msg
        assert _files(tmp_path) == before and not _escaped(tmp_path) and not (rd/"ppo"/"checkpoints").exists()
        shutil.rmtree(rd/"ppo")
    _plant(rd, {"update": 3})                               # a real old-layout checkpoint is still adopted
    _adopt_old_layout(rd/"ppo", rd/"ppo"/"checkpoints")
    assert (rd/"ppo"/"checkpoints"/"checkpoint-3"/"state.json").exists() and not (rd/"ppo"/"checkpoint").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch):
    "A real S3 API server (moto's, on 127.0.0.1) with one bucket, as in test_cloud."
    import boto3
    from moto.server import ThreadedMotoServer
    port = _free_port(); server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False); server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in dict(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                     AWS_ENDPOINT_URL_S3=endpoint, AWS_EC2_METADATA_DISABLED="true").items():
        monkeypatch.setenv(k, v)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bkt")
    yield endpoint
    server.stop()


def test_pulled_run_folder_with_planted_state_json_is_refused_end_to_end(s3, tmp_path, capsys):
    "Pushed to a bucket, pulled into a new folder, `--stages ppo` on the tiny model: exit 2, one line, nothing moved."
    from cai_workbench.core.cloud import pull, push
    from cai_workbench.feedback.reward_scoring import random_reward_adapter
    src = Run.create(tmp_path/"theirs"/"run", seed=0).path
    random_reward_adapter(src/"reward_model"/"adapter", base="tiny")
    _plant(src, PLANT)
    push(src, "s3://bkt/runs/shared", progress=False)
    dst = tmp_path/"mine"/"a"/"b"/"run"                    # deep enough that ../../../../ESCAPED stays inside tmp_path
    pull("s3://bkt/runs/shared", dst, progress=False)
    assert json.loads((dst/"ppo"/"checkpoint"/"state.json").read_text()) == PLANT
    cfg = tmp_path/"c.yaml"
    cfg.write_text(yaml.safe_dump({"model": "tiny", "stages": ["ppo"], "ppo": {
        "prompts": "demo", "limit": 4, "total_updates": 1, "batch_size": 2, "minibatch_size": 2, "ppo_epochs": 1,
        "generation": {"max_new_tokens": 4}}}))
    before = _files(tmp_path)
    assert main(["run", str(cfg), "--run-dir", str(dst), "--stages", "ppo"]) == 2
    err = capsys.readouterr().err                           # (stderr also has the model loader's progress bars)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(dst/"ppo"/"checkpoint"/"state.json") in lines[0] and "Traceback" not in err, err
    assert not _escaped(tmp_path)
    after = _files(tmp_path)
    assert {k: v for k, v in after.items() if "/checkpoint" in k} == {k: v for k, v in before.items() if "/checkpoint" in k}
    assert set(before) <= set(after)                        # nothing moved away


def test_run_sweep_and_principle_names_cannot_leave_their_folder(tmp_path, capsys):
    from cai_workbench.launch.sweeps import ablate_principle, expand_sweep
    from cai_workbench.pipeline import PipelineConfig
    with pytest.raises(ConfigError, match=r"PipelineConfig.name='../x'"): PipelineConfig.from_dict({"name": "../x"})
    cfg = tmp_path/"c.yaml"; cfg.write_text(f"name: ../escaped-run\nruns_dir: {tmp_path/'runs'}\nmodel: tiny\nstages: [sft]\n")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "name='../escaped-run'" in err and str(cfg) in err
    assert not (tmp_path/"escaped-run").exists() and not (tmp_path/"runs").exists()
    with pytest.raises(ConfigError, match="name"):           # a sweep's variants are named from it
        expand_sweep({"name": "../up", "model": "tiny", "sweep": {"seed": [0, 1]}})
    with pytest.raises(ConfigError, match="name"):
        expand_sweep({"name": "ok", "model": "tiny", "sft": {}, "sweep": {"sft.a/b": [1]}})
    con = tmp_path/"con.yaml"
    con.write_text(yaml.safe_dump({"name": "mine", "principles": [
        {"name": "../../../evil", "critique_request": "Is it harmful?", "revision_request": "Make it harmless.",
         "comparison_question": "Which is less harmful?"},
        {"name": "kind", "critique_request": "Is it unkind?", "revision_request": "Make it kind.",
         "comparison_question": "Which is kinder?"}]}))
    out = tmp_path/"deep"/"er"/"out"
    with pytest.raises(ValueError, match="principle name='../../../evil'"):
        ablate_principle({"critique_revision": {"constitution": str(con)}}, "../../../evil", out)
    assert [p for p in tmp_path.rglob("*") if "evil" in p.name] == []
    assert ablate_principle({"critique_revision": {"constitution": str(con)}}, "kind", out)["sweep"]   # a plain name still works


# --- 2. a kill during a forced rerun -----------------------------------------------------------------------------------
def test_kill_during_forced_rerun_puts_the_good_adapter_back(tmp_path, capsys):
    "SIGKILL a real CLI process during `--stages sft --force`; the next start restores sft, cleans up, evaluation sees it."
    from cai_workbench.stages.evaluation import discover_stages
    rd = tmp_path/"run"; shutil.copytree(OLD_RUN, rd)
    good, info = _files(rd/"sft"), Run(rd).stage_info("sft")
    slow = yaml.safe_load((rd/"config.yaml").read_text())
    slow["sft"] = {**slow["sft"], "max_steps": 100000, "save_every": 1}
    cfg = tmp_path/"slow.yaml"; cfg.write_text(yaml.safe_dump(slow))
    code = "import sys; from cai_workbench.cli import main; sys.exit(main(sys.argv[1:]))"
    p = subprocess.Popen([sys.executable, "-c", code, "run", str(cfg), "--run-dir", str(rd), "--stages", "sft", "--force"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        t0 = time.time()
        while not list((rd/"sft").glob("**/checkpoint-*/trainer_state.json")):   # training is under way
            assert p.poll() is None, "the rerun ended before it could be killed"
            assert time.time() - t0 < 240, "no checkpoint within 240 s"
            time.sleep(0.2)
    finally:
        p.send_signal(signal.SIGKILL); p.wait()
    assert (rd/".sft.prev").is_dir() and not (rd/"sft"/"adapter").exists()   # what the kill left
    (rd/".reward_model.x1y2.tmp").mkdir()                                    # and a half-made atomic_dir
    assert main(["run", "--preset", "tiny", "--run-dir", str(rd), "--stages", "sft"]) == 0
    out = capsys.readouterr().out
    assert "sft: a from-scratch rerun was interrupted" in out and "sft: done already" in out
    assert _files(rd/"sft") == good
    assert Run(rd).stage_info("sft") == info
    assert "sft" in discover_stages(Run(rd))
    assert sorted(p.name for p in rd.iterdir() if p.name.startswith(".")) == [".lock"]


# --- 3. human decisions across a forced preferences rerun --------------------------------------------------------------
def test_human_decisions_survive_a_forced_preferences_rerun(tmp_path):
    from cai_workbench.pipeline import load_config, run_pipeline
    from cai_workbench.ui.pair_viewer import PairViewer, set_label
    from cai_workbench.inputs.pair_data import load_pair_file
    rd = tmp_path/"run"; shutil.copytree(OLD_RUN, rd)
    cfg, where = load_config("tiny")
    run_pipeline(cfg, run_dir=rd, stages=["preferences"], force=True, where=where, progress=False)   # pairs of this code
    pairs = load_pair_file(rd/"preferences"/"pairs.jsonl")
    decided = {pairs[0]["id"]: "flip", pairs[-1]["id"]: "tie"}
    for pid, dec in decided.items(): set_label(Run(rd), pid, dec)
    v = PairViewer(Run(rd)); v.source.value = "human"; assert len(v.filtered) == 2
    run_pipeline(cfg, run_dir=rd, stages=["preferences"], force=True, where=where, progress=False)
    after = {r["id"]: r for r in load_pair_file(rd/"preferences"/"pairs.jsonl")}
    assert {i for i, r in after.items() if r.get("label_source") == "human"} == set(decided)
    assert all(after[i]["human_decision"] == d for i, d in decided.items()) and after[pairs[-1]["id"]]["label"] == "tie"
    v = PairViewer(Run(rd)); v.source.value = "human"; assert len(v.filtered) == 2
    assert not (rd/".preferences.prev").exists()


# --- 4. a user's own folder ----------------------------------------------------------------------------------------------
def test_a_non_run_folder_is_refused_before_anything_is_written(tmp_path, capsys):
    from cai_workbench.launch.sweeps import run_sweep
    mine = tmp_path/"mine"; (mine/"evaluation").mkdir(parents=True); (mine/"evaluation"/"my_notes.md").write_text("my notes")
    before = _files(mine)
    assert main(["run", "--preset", "tiny", "--run-dir", str(mine), "--force", "--stages", "evaluation"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(mine) in err and "not a run folder" in err and "new or empty folder" in err, err
    assert _files(mine) == before and sorted(p.name for p in mine.iterdir()) == ["evaluation"]      # not even a lock file
    (tmp_path/"runs"/"s-seed=0").mkdir(parents=True); (tmp_path/"runs"/"s-seed=0"/"notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a run folder"):          # a sweep's variant folder too, before any variant runs
        run_sweep({"name": "s", "model": "tiny", "stages": ["sft"], "sweep": {"seed": [1, 0]}}, runs_dir=tmp_path/"runs")
    assert sorted(p.name for p in (tmp_path/"runs").iterdir()) == ["s-seed=0"]
