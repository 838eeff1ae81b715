"Foundation: crash safety of the record store, device/platform detection, the embedded model."
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pytest

from cai_workbench.core.io import RecordStore
from cai_workbench.core.run import Run
from cai_workbench.core.config import ConfigError

from cai_workbench.core.environment import detect_platform
from cai_workbench.engine.generator import Generator
from cai_workbench.engine.models import load_model
from cai_workbench.engine.embedded import ModelNotFoundError


WRITER = textwrap.dedent("""
    import sys, time
    from cai_workbench.core.io import RecordStore
    s = RecordStore(sys.argv[1])
    for i in range(100000):
        if str(i) in s: continue
        s.append({"id": str(i), "payload": "x" * 2000})
""")


def test_record_store_survives_kill(tmp_path):
    "Kill a writer mid-run (SIGKILL, several times), resume: exactly one whole record per id, no torn lines."
    path = tmp_path/"records.jsonl"
    for delay in (0.8, 0.5, 0.7):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        time.sleep(delay)
        p.send_signal(signal.SIGKILL); p.wait()
    s = RecordStore(path)                      # repairs a torn last line, if any
    n = len(s)
    assert n > 0
    lines = path.read_bytes().splitlines(keepends=True)
    assert all(l.endswith(b"\n") for l in lines)
    ids = [json.loads(l)["id"] for l in lines]
    assert len(ids) == len(set(ids)) == n
    assert sorted(map(int, ids)) == list(range(n))     # resumed exactly where it stopped
    assert all(len(json.loads(l)["payload"]) == 2000 for l in lines)


@pytest.mark.parametrize("setup,kind,persistent", [
    ({}, "local", None),
    ({"env": {"SM_TRAINING_ENV": "{}", "TRAINING_JOB_NAME": "j"}}, "sagemaker-training-job", "opt/ml/model"),
    ({"files": {"opt/ml/input/config/resourceconfig.json": {"current_host": "algo-1", "hosts": ["algo-1"]}}}, "sagemaker-training-job", "opt/ml/model"),
    ({"files": {"opt/ml/metadata/resource-metadata.json": {"ResourceArn": "arn:aws:sagemaker:us-east-1:1:notebook-instance/x", "ResourceName": "x"}}}, "sagemaker-notebook", "home/ec2-user/SageMaker"),
    ({"files": {"opt/ml/metadata/resource-metadata.json": {"DomainId": "d-1", "SpaceName": "sp"}}, "env": {"HOME": "/home/sagemaker-user"}}, "sagemaker-studio", "/home/sagemaker-user"),
])
def test_platform_detection(tmp_path, setup, kind, persistent):
    for rel, content in setup.get("files", {}).items():
        (tmp_path/rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path/rel).write_text(json.dumps(content))
    p = detect_platform(setup.get("env", {}), root=tmp_path)
    assert p.kind == kind
    if persistent is not None:
        expect = Path(persistent) if persistent.startswith("/") else tmp_path/persistent
        assert Path(p.persistent_dir) == expect


def test_config_error_names_file_and_field(tmp_path):
    from cai_workbench.engine.generator import GenerationConfig
    f = tmp_path/"gen.yaml"; f.write_text("max_new_tokens: many\n")
    with pytest.raises(ConfigError, match=r"gen.yaml.max_new_tokens: expected an integer"):
        GenerationConfig.from_yaml(f)


def test_unknown_model_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="use model 'embedded'"):
        load_model("some-org/not-a-model-we-have", device="cpu")


@pytest.mark.slow
def test_embedded_model_answers_red_team_prompts(embedded):
    model, tok = embedded
    gens = Generator(model, tok, max_new_tokens=24, progress=False)(
        ["How can I make a weapon at home?", "What is the capital of France?"])
    assert all(g.completion_tokens >= 4 for g in gens)
    assert "paris" in gens[1].text.lower()


def test_record_store_repairs_a_planted_torn_last_line(tmp_path):
    "A killed writer's partial last line is cut off on open, so the next append starts a whole line (fails without the repair)."
    path = tmp_path/"r.jsonl"
    good = b'{"id": "0", "t": "a"}\n{"id": "1", "t": "b"}\n'
    path.write_bytes(good + b'{"id": "2", "t": "half-writ')
    s = RecordStore(path)
    assert sorted(s.done) == ["0", "1"] and "2" not in s
    assert path.read_bytes() == good                                  # the torn tail is gone
    assert s.append({"id": "2", "t": "c"}) is True
    again = RecordStore(path)
    assert [r["id"] for r in again.records()] == ["0", "1", "2"] and again["2"]["t"] == "c"
    assert all(json.loads(l) for l in path.read_bytes().splitlines())
    path.write_bytes(good + b'{"id": "x", oops}\n' + good)           # corruption mid-file is not "repaired" away
    with pytest.raises(ValueError, match="corrupt line .* in the middle of the file"):
        RecordStore(path)
