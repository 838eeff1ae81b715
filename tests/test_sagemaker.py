"""SageMaker jobs, offline: launch_stage against moto's S3 + SageMaker HTTP server (real SDK v3 ModelTrainer,
real boto3), then the uploaded code's entry script on a simulated /opt/ml tree with the tiny model."""
import json, os, socket, subprocess, sys
from pathlib import Path

import pytest
import requests

pytest.importorskip("sagemaker.train", reason="the optional extra: pip install 'cai-workbench[sagemaker]'")
import boto3

from cai_workbench.core.cloud import CloudError, pull
from cai_workbench.core.run import Run
from cai_workbench.core.io import read_json, write_json
from cai_workbench.launch.sagemaker import ENTRY_SCRIPT, SageMakerJobConfig, launch_stage, main, sagemaker_env

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def aws():
    "moto's server for every AWS service, with dummy credentials; yields the endpoint."
    from moto.server import ThreadedMotoServer
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False); server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL=endpoint, SAGEMAKER_VALIDATE_ROLE="false", AWS_EC2_METADATA_DISABLED="true")
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket="bkt")
    yield endpoint
    for k, v in old.items():
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v
    server.stop()


def _sft_jsonl(n=4):
    return "\n".join(json.dumps({"prompt": [{"role": "user", "content": f"question {i}?"}],
                                 "completion": [{"role": "assistant", "content": f"a careful answer {i}."}],
                                 "label": "harmful"}) for i in range(n)) + "\n"


def _run_with_revisions(tmp_path):
    from cai_workbench.pipeline import PipelineConfig
    cfg = PipelineConfig(name="smrun", runs_dir=str(tmp_path/"runs"), model="tiny", stages=["sft"],
                         sft={"max_steps": 2, "batch_size": 2, "max_length": 64, "lora": {"r": 4, "alpha": 8}})
    run = Run.create(tmp_path/"runs"/"smrun", config=cfg)
    (run.path/"critique_revision").mkdir()
    (run.path/"critique_revision"/"sft.jsonl").write_text(_sft_jsonl())
    (run.path/".env").write_text("SECRET=1")                 # must not reach S3
    return cfg, run


def ch_code_prefix(d):
    return next(c["DataSource"]["S3DataSource"]["S3Uri"] for c in d["InputDataConfig"] if c["ChannelName"] == "code")


def _download(prefix: str, dest: Path):
    "Fetch what SageMaker would mount for a channel (S3Prefix, File mode)."
    return pull(prefix, dest, progress=False)


@pytest.mark.slow
def test_launch_stage_request_then_entry_point_on_simulated_opt_ml(aws, tmp_path, monkeypatch):
    cfg, run = _run_with_revisions(tmp_path)
    job = launch_stage("sft", cfg, instance_type="ml.g5.12xlarge", role=ROLE, s3_prefix="s3://bkt/cai-runs",
                       job=SageMakerJobConfig(distributed=True, processes_per_host=4), progress=False)
    assert job.run_uri == "s3://bkt/cai-runs/smrun" and job.stage == "sft"
    assert sorted(job.pushed.copied) == ["config.yaml", "critique_revision/sft.jsonl", "manifest.json"]
    assert job.pushed.excluded_secrets == [".env"]

    # --- the request SageMaker received
    d = job.describe()
    assert d["AlgorithmSpecification"]["TrainingImage"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6-gpu-py312"
    assert d["RoleArn"] == ROLE
    assert d["ResourceConfig"]["InstanceType"] == "ml.g5.12xlarge" and d["ResourceConfig"]["InstanceCount"] == 1
    assert d["OutputDataConfig"]["S3OutputPath"] == "s3://bkt/cai-runs/sagemaker-jobs"        # outside the run mirror
    assert ch_code_prefix(d).startswith("s3://bkt/cai-runs/cai-sft/")
    hps = d["HyperParameters"]
    assert hps["stage"] == "sft" and hps["run_uri"] == "s3://bkt/cai-runs/smrun" and hps["force"] == "false"
    ch = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in d["InputDataConfig"]}
    assert set(ch) == {"run", "code", "sm_drivers"} and ch["run"] == "s3://bkt/cai-runs/smrun/"

    # --- the code channel holds the package, its requirements and the entry script; torchrun is configured
    code = _download(ch["code"], tmp_path/"opt_ml"/"input"/"data"/"code")
    assert {ENTRY_SCRIPT, "requirements.txt", "cai_workbench/launch/sagemaker.py", "cai_workbench/stages/sft.py"} <= set(code.copied)
    reqs = (tmp_path/"opt_ml"/"input"/"data"/"code"/"requirements.txt").read_text().split()
    assert any(r.startswith("trl") for r in reqs) and not any(r.startswith("torch") for r in reqs)
    drivers = tmp_path/"opt_ml"/"input"/"data"/"sm_drivers"
    _download(ch["sm_drivers"], drivers)
    assert read_json(drivers/"sourcecode.json")["entry_script"] == ENTRY_SCRIPT
    assert read_json(drivers/"distributed.json")["process_count_per_node"] == 4
    assert "torchrun_driver.py" in (drivers/"sm_train.sh").read_text()

    # --- the container: channels mounted, hyperparameters as strings, the entry script run from the code folder
    root = tmp_path/"opt_ml"
    _download(ch["run"], root/"input"/"data"/"run")
    write_json(root/"input"/"config"/"hyperparameters.json", hps)
    write_json(root/"input"/"config"/"resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1"]})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(CAI_SM_ROOT=str(root), PYTHONPATH="", HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    p = subprocess.run([sys.executable, ENTRY_SCRIPT], cwd=root/"input"/"data"/"code", env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert f"from {root/'input'/'data'/'code'/'cai_workbench'}" in p.stdout     # the uploaded copy ran
    assert not (root/"output"/"failure").exists()
    assert (root/"model"/"sft"/"adapter"/"adapter_config.json").exists()         # -> model.tar.gz
    assert read_json(root/"model"/"manifest.json")["stages"]["sft"]["status"] == "done"
    metrics = read_json(root/"output"/"data"/"metrics.json")                       # -> output.tar.gz
    assert metrics["stage"] == "sft" and metrics["status"] == "done" and metrics["steps"] == 2
    assert "cai_metrics {" in p.stdout

    # --- the job ends (moto marks it Completed); wait() pulls the stage back into the local run folder
    assert not (run.path/"sft").exists()
    job.wait(poll_s=0)
    assert job.status == "Completed"
    assert (run.path/"sft"/"adapter"/"adapter_config.json").exists()
    assert Run(run.path).is_done("sft")
    from cai_workbench.engine.models import load_model
    m, tok = load_model(run.path/"sft"/"adapter", device="cpu", dtype="float32")
    assert m is not None


def test_launch_stage_refuses_bad_input_before_uploading(aws, tmp_path):
    cfg, run = _run_with_revisions(tmp_path)
    before = boto3.client("s3").list_objects_v2(Bucket="bkt", Prefix="x/").get("KeyCount")
    with pytest.raises(ValueError, match="stage 'sftt'"):
        launch_stage("sftt", cfg, role=ROLE, s3_prefix="s3://bkt/x", progress=False)
    with pytest.raises(CloudError, match="needs s3_prefix"):
        launch_stage("sft", cfg, role=ROLE, progress=False)
    with pytest.raises(ValueError, match="instance types start with 'ml.'"):
        launch_stage("sft", cfg, instance_type="g5.xlarge", role=ROLE, s3_prefix="s3://bkt/x", progress=False)
    assert boto3.client("s3").list_objects_v2(Bucket="bkt", Prefix="x/").get("KeyCount") == before


def test_entry_point_failure_is_written_where_sagemaker_reads_it(tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith("SM_")]: monkeypatch.delenv(k)
    root = tmp_path/"opt_ml"
    cfg, run = _run_with_revisions(tmp_path)
    (run.path/"critique_revision"/"sft.jsonl").unlink()                          # the stage's input is missing
    import shutil; shutil.copytree(run.path, root/"input"/"data"/"run")
    write_json(root/"input"/"config"/"hyperparameters.json", {"stage": "sft", "model": "tiny"})
    assert main(root=root) == 1
    reason = (root/"output"/"failure").read_text()
    assert "critique_revision/sft.jsonl" in reason and "MissingStageError" in reason
    assert not (root/"model"/"sft").exists()


def test_sm_variables_take_precedence_over_the_files(tmp_path, monkeypatch):
    root = tmp_path/"opt_ml"
    write_json(root/"input"/"config"/"hyperparameters.json", {"stage": "dpo"})
    monkeypatch.setenv("SM_HPS", json.dumps({"stage": "sft", "force": "true"}))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path/"m"))
    monkeypatch.setenv("SM_CHANNEL_RUN", str(tmp_path/"r"))
    monkeypatch.setenv("SM_HOSTS", json.dumps(["algo-1", "algo-2"]))
    e = sagemaker_env(root)
    assert e.hyperparameters == {"stage": "sft", "force": True}
    assert (e.model_dir, e.channel("run"), e.hosts) == (tmp_path/"m", tmp_path/"r", ["algo-1", "algo-2"])
    assert e.output_data_dir == root/"output"/"data"                       # no variable: the file-tree fallback


SPOT_KILL = """
import os, signal, sys
import cai_workbench.core.checkpoints as C
orig = C.CheckpointGuard.on_save
def on_save(self, args, state, control, **kw):
    orig(self, args, state, control, **kw)
    if state.global_step == 4: os.kill(os.getpid(), signal.SIGKILL)      # the spot instance goes away after checkpoint-4
C.CheckpointGuard.on_save = on_save
from cai_workbench.launch.sagemaker import main
raise SystemExit(main(root=sys.argv[1]))
"""


def test_interrupted_spot_job_resumes_from_synced_checkpoints(tmp_path, capsys):
    "Simulated /opt/ml: kill the entry point mid-stage, restart it on a fresh copy of the run channel, it resumes from /opt/ml/checkpoints."
    import shutil
    from test_checkpoints import EX, CFG
    from cai_workbench.pipeline import PipelineConfig
    src = Run.create(tmp_path/"run", config=PipelineConfig(model="tiny", stages=["sft"], sft=CFG))
    (src.stage_dir("critique_revision")/"sft.jsonl").write_text("".join(
        json.dumps({"id": str(i), "prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": c}]}) + "\n"
        for i, (p, c) in enumerate(EX)))
    root = tmp_path/"opt_ml"
    shutil.copytree(src.path, root/"input"/"data"/"run")
    write_json(root/"input"/"config"/"hyperparameters.json", {"stage": "sft", "model": "tiny"})
    (root/"checkpoints").mkdir()                                        # the job has a checkpoint_config
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "CUDA_VISIBLE_DEVICES": ""}
    p = subprocess.run([sys.executable, "-c", SPOT_KILL, str(root)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == -9, p.stderr[-2000:]
    assert sorted(x.name for x in (root/"checkpoints"/"sft").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    shutil.rmtree(root/"input"/"data"/"run"); shutil.copytree(src.path, root/"input"/"data"/"run")   # restart: fresh channel
    assert main(root=root) == 0
    out = capsys.readouterr().out
    assert f"resuming from {root/'input'/'data'/'run'/'sft'/'checkpoints'/'checkpoint-4'}" in out
    m = read_json(root/"model"/"sft"/"metrics.json")
    assert m["steps"] == 6 and len(m["losses"]) == 6
    assert not list((root/"checkpoints"/"sft").iterdir())               # finished: the synced checkpoints are cleared


def test_spot_jobs_get_a_checkpoint_config(aws):
    from cai_workbench.launch.sagemaker import build_trainer
    s = boto3.Session(region_name="us-east-1")
    tr, _ = build_trainer("dpo", "s3://b/runs/r1", "arn:aws:iam::1:role/x", SageMakerJobConfig(spot=True), boto_session=s)
    assert (tr.checkpoint_config.s3_uri, tr.checkpoint_config.local_path) == ("s3://b/runs/r1/checkpoints/dpo", "/opt/ml/checkpoints")
    tr, _ = build_trainer("dpo", "s3://b/runs/r1", "arn:aws:iam::1:role/x", SageMakerJobConfig(), boto_session=s)
    assert tr.checkpoint_config is None


@pytest.mark.slow
def test_sweep_on_sagemaker_runs_variants_as_parallel_jobs_sharing_stages(aws, tmp_path, monkeypatch):
    "run_sweep(on='sagemaker'): real launch requests to moto; each job's container is simulated (channels from S3, the entry point, results synced back)."
    import threading, time
    from cai_workbench.launch.sagemaker import SageMakerJob
    from cai_workbench.launch.sweeps import run_sweep
    for k in [k for k in os.environ if k.startswith("SM_")]: monkeypatch.delenv(k)
    cfg = {"name": "sw", "model": "tiny", "runs_dir": str(tmp_path/"runs"), "stages": ["critique_revision", "sft"],
           "critique_revision": {"prompts": "demo", "limit": 2, "rounds": 1, "generation": {"max_new_tokens": 4, "batch_size": 2},
                                 "filters": {"empty": False, "near_duplicates": False}},     # the random tiny model may answer nothing
           "sft": {"max_steps": 1, "batch_size": 2, "max_length": 64, "lora": {"r": 4, "alpha": 8}, "device": "cpu"},
           "sweep": {"sft.learning_rate": [1e-4, 2e-4]}}
    container, waiting, most = threading.Lock(), set(), []
    real_wait = SageMakerJob.wait
    def sagemaker_runs_it(self, poll_s=30, pull_results=True):
        waiting.add(self.name)
        t0 = time.time()                                                  # a parallel sweep has both sft jobs out before either runs;
        while self.stage == "sft" and len(waiting) < 2 and time.time() - t0 < 120: time.sleep(0.5)   # a sequential one never does
        most.append(len(waiting))
        d = self.describe()
        ch = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in d["InputDataConfig"]}
        with container:                                                   # one simulated instance at a time on this machine
            root = tmp_path/"opt_ml"/self.name
            _download(ch["run"], root/"input"/"data"/"run")
            write_json(root/"input"/"config"/"hyperparameters.json", d["HyperParameters"])
            rc = main(root=root)
        waiting.discard(self.name)
        assert rc == 0, (root/"output"/"failure").read_text()
        return real_wait(self, poll_s=0, pull_results=pull_results)
    monkeypatch.setattr(SageMakerJob, "wait", sagemaker_runs_it)

    res = run_sweep(cfg, on="sagemaker", s3_prefix="s3://bkt/sweep", role=ROLE, poll_s=0, progress=False)
    a, b = (p.name for p in res.runs)
    assert (a, b) == ("sw-learning_rate=0.0001", "sw-learning_rate=0.0002")
    assert [len(res.jobs[a]), len(res.jobs[b])] == [2, 1]                 # critique_revision ran once, in a's job
    assert res.reused == {b: ["critique_revision"]}
    assert max(most) == 2                                                 # both sft jobs were out at the same time
    rb = Run(res.runs[1])
    assert rb.stage_info("critique_revision")["reused_from"] == str(res.runs[0])
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="bkt", Prefix=f"sweep/{b}/")["Contents"]]
    assert f"sweep/{b}/critique_revision/records.jsonl" in keys            # the shared stage reached b's mirror for its job
    for r in res.runs: assert Run(r).is_done("sft") and (r/"sft"/"adapter"/"adapter_config.json").exists()
    assert [Run(r).manifest["config"]["sft"]["learning_rate"] for r in res.runs] == [1e-4, 2e-4]   # the manifest the jobs wrote back
    with pytest.raises(ValueError, match="on='gpu'"):
        run_sweep(cfg, on="gpu")
    with pytest.raises(ValueError, match="needs s3_prefix"):
        run_sweep(cfg, on="sagemaker")
