"Tracking: a TRL stage inside a tracked run logs to MLflow (nested stage run) and TensorBoard, read back from the local store and event files."
from cai_workbench.core.run import Run
from cai_workbench.stages.sft import SFTConfig, run_sft
from cai_workbench.core.tracking import Tracker, read_mlflow, read_tensorboard, report_args

from test_checkpoints import sft_run


def test_sft_logs_to_mlflow_and_tensorboard(tmp_path):
    run = sft_run(tmp_path/"runs"/"r")
    assert report_args("sft") == {"report_to": "none"}                  # nothing is tracked outside a tracker
    cfg = SFTConfig.from_dict({"lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "max_steps": 3, "batch_size": 2, "device": "cpu"})
    with Tracker(run, ["mlflow", "tensorboard"], config={"sft": cfg.to_dict(), "name": "r"}) as t:
        with t.stage("sft"): run_sft(run, cfg, model="tiny", progress=False)
    got = read_mlflow(run.path)
    assert got["params"]["sft.max_steps"] == "3" and "manifest.json" in got["artifacts"]
    assert [s for s, _ in got["stages"]["sft"]["loss"]] == [1, 2, 3]    # TRL's MLflowCallback wrote into our nested stage run
    tb = read_tensorboard(run.path/"tensorboard"/"sft")
    assert [s for s, _ in tb["train/loss"]] == [1, 2, 3]
    assert [v for _, v in tb["train/loss"]] == [v for _, v in got["stages"]["sft"]["loss"]]
    assert (tmp_path/"runs"/"mlruns").is_dir()                           # a local file store beside the run folders, no server


# --- SageMaker managed MLflow: a tracking-server ARN through the real sagemaker-mlflow plugin, against a local stand-in server
import json, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

ARN = "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/cai-test"


class FakeMlflowServer:
    "The few MLflow REST 2.0 calls a tracked run makes, kept in memory; every request's headers are recorded."
    def __init__(self, root):
        self.root, self.requests, self.experiments, self.runs = root, [], {}, {}
        srv = self
        class H(BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def do_GET(self): self._do("GET")
            def do_POST(self): self._do("POST")
            def _do(self, method):
                u = urlparse(self.path); n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}") if method == "POST" else {k: v[0] for k, v in parse_qs(u.query).items()}
                srv.requests.append({"method": method, "path": u.path, "headers": dict(self.headers)})
                code, out = srv.handle(u.path.split("/mlflow/", 1)[-1], body)
                data = json.dumps(out).encode()
                self.send_response(code); self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(data)))
                self.end_headers(); self.wfile.write(data)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _run(self, rid):
        r = self.runs[rid]
        return {"info": r["info"], "data": {"params": [{"key": k, "value": v} for k, v in r["params"].items()],
                                            "tags": [{"key": k, "value": v} for k, v in r["tags"].items()],
                                            "metrics": [m for m in r["metrics"]]}}

    def handle(self, op, b):
        missing = (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"})
        if op == "experiments/get-by-name":
            e = next((e for e in self.experiments.values() if e["name"] == b["experiment_name"]), None)
            return (200, {"experiment": e}) if e else missing
        if op == "experiments/create":
            eid = str(len(self.experiments) + 1)
            self.experiments[eid] = {"experiment_id": eid, "name": b["name"], "lifecycle_stage": "active",
                                     "artifact_location": (self.root/eid).as_uri(), "tags": []}
            return 200, {"experiment_id": eid}
        if op == "experiments/get": return (200, {"experiment": self.experiments[b["experiment_id"]]}) if b["experiment_id"] in self.experiments else missing
        if op == "runs/create":
            rid = f"run{len(self.runs)}"
            tags = {t["key"]: t["value"] for t in b.get("tags", [])}
            info = {"run_id": rid, "run_uuid": rid, "experiment_id": b["experiment_id"], "run_name": b.get("run_name", rid),
                    "status": "RUNNING", "start_time": b.get("start_time", 0), "lifecycle_stage": "active",
                    "artifact_uri": (self.root/b["experiment_id"]/rid/"artifacts").as_uri(), "user_id": "u"}
            self.runs[rid] = {"info": info, "params": {}, "tags": tags, "metrics": []}
            return 200, {"run": self._run(rid)}
        if op == "runs/get": return (200, {"run": self._run(b["run_id"])}) if b["run_id"] in self.runs else missing
        if op == "runs/log-batch":
            r = self.runs[b["run_id"]]
            r["params"].update({p["key"]: p["value"] for p in b.get("params", [])})
            r["tags"].update({t["key"]: t["value"] for t in b.get("tags", [])}); r["metrics"] += b.get("metrics", [])
            return 200, {}
        if op == "runs/set-tag": self.runs[b["run_id"]]["tags"][b["key"]] = b["value"]; return 200, {}
        if op == "runs/update":
            r = self.runs[b["run_id"]]; r["info"]["status"] = b.get("status", r["info"]["status"]); return 200, {"run_info": r["info"]}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"fake server: no {op}"}


@pytest.fixture
def sagemaker_mlflow(tmp_path, monkeypatch):
    pytest.importorskip("sagemaker_mlflow", reason="the sagemaker extra is not installed")
    srv = FakeMlflowServer(tmp_path/"artifacts")
    monkeypatch.setenv("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", srv.url)     # the plugin's own override of the URL it derives from the ARN
    for k, v in {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_DEFAULT_REGION": "us-west-2"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False); monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield srv
    srv.httpd.shutdown()


def test_tracking_server_arn_goes_through_the_sagemaker_mlflow_plugin(tmp_path, sagemaker_mlflow, monkeypatch):
    from mlflow.tracking._tracking_service.utils import _get_store
    from cai_workbench.core.tracking import log_metrics
    monkeypatch.delenv("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT")
    store = _get_store(ARN)                                               # the plugin's store and the URL it derives from the ARN
    assert type(store).__name__ == "MlflowSageMakerStore"
    assert store.get_host_creds().host == "https://us-west-2.experiments.sagemaker.aws" and store.get_host_creds().auth == "arn"
    monkeypatch.setenv("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", sagemaker_mlflow.url)

    run = Run.create(tmp_path/"runs"/"r", config={"ppo": {"total_updates": 2}, "model": "tiny"})
    with Tracker(run, "mlflow", tracking_uri=ARN) as t:
        with t.stage("ppo"):
            for k in range(2): log_metrics({"reward_mean": 0.5 + k}, step=k)
    assert run.manifest["tracking"]["mlflow_uri"] == ARN
    runs = sagemaker_mlflow.runs
    parent = runs[run.manifest["tracking"]["mlflow_run_id"]]
    assert parent["params"]["ppo.total_updates"] == "2" and parent["info"]["status"] == "FINISHED"
    kid = next(r for r in runs.values() if r["tags"].get("stage") == "ppo")
    assert kid["tags"]["mlflow.parentRunId"] == parent["info"]["run_id"]
    assert [(m["step"], m["value"]) for m in kid["metrics"] if m["key"] == "reward"] == [(0, 0.5), (1, 1.5)]
    auth = [r["headers"].get("Authorization", "") for r in sagemaker_mlflow.requests]
    assert auth and all(a.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") and "/us-west-2/sagemaker-mlflow/aws4_request" in a
                        for a in auth), auth[:2]                           # every call SigV4-signed for the ARN's region and service
    assert (tmp_path/"artifacts").rglob("manifest.json")


def test_tracking_server_arn_without_the_plugin_is_one_clear_error(tmp_path, monkeypatch):
    import importlib.metadata as md
    from cai_workbench.core.config import ConfigError
    real = md.entry_points
    monkeypatch.setattr(md, "entry_points", lambda **kw: [e for e in real(**kw) if e.name != "arn"] if kw.get("group", "").startswith("mlflow.") else real(**kw))
    run = Run.create(tmp_path/"runs"/"r")
    with pytest.raises(ConfigError, match=r"tracking_uri arn:aws:sagemaker:.*sagemaker-mlflow.*pip install 'cai-workbench\[sagemaker\]'"):
        Tracker(run, "mlflow", tracking_uri=ARN)
    assert "tracking" not in run.manifest                                 # nothing was started


@pytest.mark.parametrize("bad", ["arn:aws:s3:::bucket", "arn:aws:sagemaker:us-west-2:123456789012:endpoint/x",
                                 "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/"])
def test_a_malformed_tracking_arn_is_refused_naming_the_shape(tmp_path, bad):
    from cai_workbench.core.config import ConfigError
    with pytest.raises(ConfigError, match=r"mlflow-tracking-server/<name>"):
        Tracker(Run.create(tmp_path/"r"), "mlflow", tracking_uri=bad)
