"S3 sync against a real HTTP S3 API: moto's ThreadedMotoServer on 127.0.0.1, boto3 pointed at it (no mocks)."
import hashlib, json, os, socket

import boto3
import pytest
import requests

from cai_workbench.core.cloud import CloudError, SyncError, push, pull, s3_client, sync_after_stage, PARTIAL_SUFFIX


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    "A fresh moto state with one bucket; returns (endpoint, raw boto3 client)."
    for k, v in dict(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                     AWS_ENDPOINT_URL_S3=moto_endpoint, AWS_EC2_METADATA_DISABLED="true").items():
        monkeypatch.setenv(k, v)
    requests.post(f"{moto_endpoint}/moto-api/reset")
    c = boto3.client("s3", endpoint_url=moto_endpoint)
    c.create_bucket(Bucket="bkt")
    return moto_endpoint, c


def _tree(root, files: dict):
    for rel, data in files.items():
        p = root/rel; p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return root


def test_push_then_pull_roundtrip_and_incremental(s3, tmp_path):
    _, c = s3
    src = _tree(tmp_path/"run", {"manifest.json": "{}", "sft/metrics.json": '{"loss": 1.0}', "sft/adapter/w.bin": os.urandom(3000)})
    s = push(src, "s3://bkt/runs/r1", progress=False)
    assert sorted(s.copied) == ["manifest.json", "sft/adapter/w.bin", "sft/metrics.json"] and s.bytes_copied == 3000 + 2 + 13
    head = c.head_object(Bucket="bkt", Key="runs/r1/sft/adapter/w.bin")
    assert head["Metadata"]["sha256"] == hashlib.sha256((src/"sft/adapter/w.bin").read_bytes()).hexdigest()
    again = push(src, "s3://bkt/runs/r1", progress=False)
    assert again.copied == [] and len(again.skipped) == 3
    dst = tmp_path/"back"
    p = pull("s3://bkt/runs/r1", dst, progress=False)
    assert len(p.copied) == 3
    for rel in ["manifest.json", "sft/metrics.json", "sft/adapter/w.bin"]:
        assert (dst/rel).read_bytes() == (src/rel).read_bytes()
    assert pull("s3://bkt/runs/r1", dst, progress=False).copied == []
    assert "copied" in p._repr_markdown_() and "3" in p._repr_markdown_()


def test_same_size_change_is_detected_both_ways(s3, tmp_path):
    src = _tree(tmp_path/"run", {"m.json": '{"loss": 1.25}'})
    push(src, "s3://bkt/p", progress=False)
    dst = tmp_path/"back"; pull("s3://bkt/p", dst, progress=False)
    (src/"m.json").write_text('{"loss": 1.75}')              # same size
    st = (dst/"m.json").stat(); os.utime(src/"m.json", ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime too
    assert push(src, "s3://bkt/p", progress=False).copied == ["m.json"]
    assert pull("s3://bkt/p", dst, progress=False).copied == ["m.json"]
    assert (dst/"m.json").read_text() == '{"loss": 1.75}'
    (dst/"m.json").write_text('{"loss": 9.99}')              # a local same-size edit is kept...
    (src/"m.json").write_text('{"loss": 2.22}'); push(src, "s3://bkt/p", progress=False)
    with pytest.raises(CloudError, match="m.json"):
        pull("s3://bkt/p", dst, progress=False)
    assert (dst/"m.json").read_text() == '{"loss": 9.99}'
    assert pull("s3://bkt/p", dst, overwrite=True, progress=False).copied == ["m.json"]   # ...unless forced
    assert (dst/"m.json").read_text() == '{"loss": 2.22}'


def test_multipart_upload_keeps_sha256_and_skips_on_rerun(s3, tmp_path):
    _, c = s3
    src = _tree(tmp_path/"run", {"big.bin": os.urandom(11 * 2**20)})
    push(src, "s3://bkt/mp", multipart_mb=5, chunk_mb=5, progress=False)
    head = c.head_object(Bucket="bkt", Key="mp/big.bin")
    assert "-" in head["ETag"]                                 # a multipart ETag: not an MD5 of the content
    assert head["Metadata"]["sha256"] == hashlib.sha256((src/"big.bin").read_bytes()).hexdigest()
    assert push(src, "s3://bkt/mp", multipart_mb=5, chunk_mb=5, progress=False).skipped == ["big.bin"]
    dst = tmp_path/"back"
    pull("s3://bkt/mp", dst, multipart_mb=5, chunk_mb=5, progress=False)
    assert (dst/"big.bin").read_bytes() == (src/"big.bin").read_bytes()


class _Interrupt(Exception): pass


def test_interrupted_pull_leaves_no_half_file_and_rerun_completes(s3, tmp_path):
    src = _tree(tmp_path/"run", {"a.txt": "small", "big.bin": os.urandom(12 * 2**20)})
    push(src, "s3://bkt/int", progress=False)
    dst = tmp_path/"back"
    seen = []
    def boom(n):
        seen.append(n)
        if sum(seen) > 2**20: raise _Interrupt("network dropped")
    s = pull("s3://bkt/int", dst, multipart_mb=5, chunk_mb=5, threads=1, callback=boom, strict=False, progress=False)
    assert "big.bin" in s.failed and not s.ok
    assert not (dst/"big.bin").exists()                        # no half file under the real name
    assert not list(dst.rglob(f"*{PARTIAL_SUFFIX}"))
    # a killed process can leave a partial file behind: the next pull removes it and completes the sync
    (dst/("big.bin" + PARTIAL_SUFFIX)).write_bytes(b"half")
    s2 = pull("s3://bkt/int", dst, progress=False)
    assert "big.bin" in s2.copied and s2.ok
    assert (dst/"big.bin").read_bytes() == (src/"big.bin").read_bytes()
    assert not list(dst.rglob(f"*{PARTIAL_SUFFIX}"))
    with pytest.raises(SyncError, match="big.bin"):          # strict (the default) raises one error naming the file
        pull("s3://bkt/int", tmp_path/"other", multipart_mb=5, chunk_mb=5, threads=1,
             callback=lambda n: (_ for _ in ()).throw(_Interrupt("dropped")), progress=False)


def test_secrets_are_not_pushed_unless_explicitly_included(s3, tmp_path):
    _, c = s3
    src = _tree(tmp_path/"run", {"ok.json": "{}", ".env": "K=v", "certs/server.pem": "x", "tls.key": "x",
                                 "home/id_rsa": "x", ".aws/config": "x", "sub/credentials": "x",
                                 ".ipynb_checkpoints/n-checkpoint.ipynb": "{}"})
    s = push(src, "s3://bkt/sec", progress=False)
    assert s.copied == ["ok.json"] and len(s.excluded_secrets) == 7
    keys = [o["Key"] for o in c.list_objects_v2(Bucket="bkt", Prefix="sec/")["Contents"]]
    assert keys == ["sec/ok.json"]
    s = push(src, "s3://bkt/sec", include_secrets=["certs/*.pem"], progress=False)
    assert s.copied == ["certs/server.pem"]
    assert "secret" in str(s)


def test_include_exclude_and_dry_run(s3, tmp_path):
    _, c = s3
    src = _tree(tmp_path/"run", {"sft/metrics.json": "{}", "sft/loss.png": "png", "dpo/metrics.json": "{}"})
    d = push(src, "s3://bkt/f", include=["sft/*"], exclude=["*.png"], dry_run=True, progress=False)
    assert d.copied == ["sft/metrics.json"] and d.dry_run and "would copy" in str(d)
    assert c.list_objects_v2(Bucket="bkt", Prefix="f/").get("KeyCount") == 0
    push(src, "s3://bkt/f", include=["sft/*"], exclude=["*.png"], progress=False)
    assert [o["Key"] for o in c.list_objects_v2(Bucket="bkt", Prefix="f/")["Contents"]] == ["f/sft/metrics.json"]
    s = sync_after_stage(src, "s3://bkt/f", stage="dpo", progress=False)
    assert s.copied == ["dpo/metrics.json"]


def test_pull_refuses_keys_that_escape_the_target(s3, tmp_path):
    _, c = s3
    for key in ["t/good.txt", "t/../evil.txt", "t/a/../../evil2.txt", "t//etc/evil3"]:
        c.put_object(Bucket="bkt", Key=key, Body=b"x")
    dst = tmp_path/"deep"/"target"
    with pytest.raises(SyncError) as ei:
        pull("s3://bkt/t", dst, progress=False)
    s = ei.value.summary
    assert s.copied == ["good.txt"] and (dst/"good.txt").read_bytes() == b"x"
    assert set(s.failed) == {"../evil.txt", "a/../../evil2.txt", "/etc/evil3"}
    assert all("outside" in v for v in s.failed.values())
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["deep/target/.cai-sync.json", "deep/target/good.txt"]    # + the record of what was synced


def test_missing_bucket_error(s3, tmp_path):
    _tree(tmp_path/"run", {"a": "b"})
    with pytest.raises(CloudError, match="bucket 'nope' does not exist.*aws s3 mb"):
        push(tmp_path/"run", "s3://nope/x", progress=False)
    with pytest.raises(CloudError, match="nothing under s3://bkt/empty"):
        pull("s3://bkt/empty", tmp_path/"b", progress=False)


def test_missing_credentials_error(s3, tmp_path, monkeypatch):
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"]:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path/"none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path/"none"))
    _tree(tmp_path/"run", {"a": "b"})
    with pytest.raises(CloudError, match="no AWS credentials found: set AWS_ACCESS_KEY_ID"):
        push(tmp_path/"run", "s3://bkt/x", progress=False)


def test_access_denied_error(s3, tmp_path):
    endpoint, _ = s3
    iam = boto3.client("iam", endpoint_url=endpoint)
    iam.create_user(UserName="nobody")                      # a user without any policy
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0")   # moto now checks IAM permissions
    try:
        sess = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        client = s3_client(endpoint, session=sess)
        _tree(tmp_path/"run", {"a": "b"})
        with pytest.raises(CloudError, match="access denied to s3://bkt/x.*s3:ListBucket"):
            push(tmp_path/"run", "s3://bkt/x", client=client, progress=False)
        # may list the bucket but not write: the file fails with the same explanation, naming the object
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf")
        iam.put_user_policy(UserName="nobody", PolicyName="list-only", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",     # moto names HEAD bucket s3:HeadBucket
                                            "Action": ["s3:ListBucket", "s3:HeadBucket", "s3:GetObject"]}]}))
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0")
        with pytest.raises(SyncError) as ei:
            push(tmp_path/"run", "s3://bkt/x", client=client, progress=False)
        assert "access denied to s3://bkt/x/a" in ei.value.summary.failed["a"] and "s3:PutObject" in str(ei.value)
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf")


def test_pull_never_silently_replaces_locally_edited_labels(s3, tmp_path):
    "Issue 13: a locally edited preferences/pairs.jsonl (5 lines -> 4 remotely) is kept; the conflict is named."
    src = _tree(tmp_path/"run", {"manifest.json": "{}", "preferences/pairs.jsonl": "".join(f'{{"id": {i}}}\n' for i in range(4)),
                                 "sft/metrics.json": '{"loss": 1}'})
    push(src, "s3://bkt/lab", progress=False)
    dst = tmp_path/"mine"; pull("s3://bkt/lab", dst, progress=False)
    mine = "".join(f'{{"id": {i}, "label": "a"}}\n' for i in range(5))
    (dst/"preferences"/"pairs.jsonl").write_text(mine)                         # human labels added locally
    (src/"sft"/"metrics.json").write_text('{"loss": 0.5}'); (src/"preferences"/"pairs.jsonl").write_text('{"id": 0}\n')
    push(src, "s3://bkt/lab", progress=False)                                  # someone else pushes a newer run
    with pytest.raises(CloudError, match=r"1 local file\(s\) changed since the last sync .*preferences/pairs.jsonl.*Nothing was copied"):
        pull("s3://bkt/lab", dst, progress=False)
    assert (dst/"preferences"/"pairs.jsonl").read_text() == mine and (dst/"sft"/"metrics.json").read_text() == '{"loss": 1}'
    s = pull("s3://bkt/lab", dst, on_conflict="keep-both", progress=False)
    assert s.conflicts == ["preferences/pairs.jsonl"] and sorted(s.copied) == ["preferences/pairs.jsonl", "sft/metrics.json"]
    assert (dst/"preferences"/"pairs.jsonl").read_text() == mine                 # local kept
    assert (dst/"preferences"/"pairs.jsonl.remote").read_text() == '{"id": 0}\n'  # remote beside it
    assert (dst/"sft"/"metrics.json").read_text() == '{"loss": 0.5}'           # unchanged-locally files are updated
    assert "changed since the last sync were kept (preferences/pairs.jsonl)" in str(s)
    assert pull("s3://bkt/lab", dst, on_conflict="keep-both", progress=False).conflicts == ["preferences/pairs.jsonl"]  # still
    (tmp_path/"fresh").mkdir(); (tmp_path/"fresh"/"manifest.json").write_text('{"other": 1}')   # never synced, differs
    with pytest.raises(CloudError, match="manifest.json"):
        pull("s3://bkt/lab", tmp_path/"fresh", progress=False)


SECRET_NAMES = [".ssh/id_ed25519", "id_ecdsa", "credentials.json", "service-account.json", ".netrc", ".git-credentials",
                ".pypirc", ".npmrc", "certs/client.p12", "hf_token.txt", "token", "secrets.yaml", ".config/gcloud/adc.json",
                ".huggingface/token", ".docker/config.json"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_each_secret_name_stays_home(s3, tmp_path, name):
    _, c = s3
    src = _tree(tmp_path/"run", {"manifest.json": "{}", "sft/adapter/tokenizer.json": "{}", "sft/adapter/special_tokens_map.json": "{}",
                                 name: "SECRET"})
    s = push(src, "s3://bkt/sec2", progress=False)
    assert s.excluded_secrets == [name]
    assert sorted(s.copied) == ["manifest.json", "sft/adapter/special_tokens_map.json", "sft/adapter/tokenizer.json"]
    keys = [o["Key"] for o in c.list_objects_v2(Bucket="bkt", Prefix="sec2/")["Contents"]]
    assert not any(k.endswith(name.split("/")[-1]) and "tokenizer" not in k for k in keys if k != "sec2/manifest.json")


def test_size_cap_and_allow_list_mode(s3, tmp_path):
    from cai_workbench.core.cloud import RUN_FILE_PATTERNS
    src = _tree(tmp_path/"run", {"manifest.json": "{}", "big.bin": os.urandom(3 * 2**20), "core.dump": "x", "sft/loss.png": "p"})
    s = push(src, "s3://bkt/cap", max_file_mb=1, progress=False)
    assert s.too_large == ["big.bin"] and "big.bin" not in s.copied and "over the size cap" in str(s)
    s = push(src, "s3://bkt/allow", allow_only=RUN_FILE_PATTERNS, progress=False)
    assert sorted(s.copied) == ["manifest.json", "sft/loss.png"]


# --- issue 32 item 8: more secret names stay home; the pipeline's own pushes upload only run files ----------------------
MORE_SECRETS = ["accessKeys.csv", "rootkey.csv", "kaggle.json", "password.txt", "passwords.yaml", "gcp-key.json",
                "private_key.txt", "openai_key.txt", "terraform.tfvars", "wandb_api.txt", "auth.json", "keys.txt",
                "prod.tfvars.json", "deploy.pem", "db_password.json", "my-credentials.csv", "secret_key.txt",
                "notes/oauth_client.json", "keys/model.json", "api-token.txt", "jwt.txt"]
RUN_FILES = ["manifest.json", "config.yaml", "sft/adapter/tokenizer.json", "sft/adapter/special_tokens_map.json",
             "sft/adapter/tokenizer_config.json", "sft/adapter/added_tokens.json", "sft/adapter/chat_template.jinja",
             "sft/adapter/adapter_model.safetensors", "sft/adapter/cai_workbench.json", "critique_revision/dataset/dataset_info.json",
             "critique_revision/dataset/data-00000-of-00001.arrow", "critique_revision/dataset/state.json", "evaluation/report.html",
             "reward_model/histograms.png", "ppo/checkpoints/checkpoint-2/state.json", "evaluation/key_results.md"]


@pytest.mark.parametrize("name", MORE_SECRETS)
def test_more_secret_names_stay_home(s3, tmp_path, name):
    _, c = s3
    src = _tree(tmp_path/"run", {"manifest.json": "{}", name: "SECRET"})
    s = push(src, "s3://bkt/sec3", progress=False)
    assert s.excluded_secrets == [name] and s.copied == ["manifest.json"]
    assert [o["Key"] for o in c.list_objects_v2(Bucket="bkt", Prefix="sec3/")["Contents"]] == ["sec3/manifest.json"]


def test_what_a_run_writes_is_not_taken_for_a_secret(s3, tmp_path):
    from cai_workbench.core.cloud import is_secret
    assert [f for f in RUN_FILES if is_secret(f)] == []
    s = sync_after_stage(_tree(tmp_path/"run", {f: "x" for f in RUN_FILES}), "s3://bkt/runfiles", progress=False)
    assert sorted(s.copied) == sorted(RUN_FILES) and not s.excluded_secrets


def test_pipeline_s3_push_and_sync_after_stage_upload_only_run_files(s3, tmp_path, monkeypatch):
    "A run folder's push uploads what a run writes and nothing else: a stray core dump, a pickle, a notes file stay home."
    import sys, types
    from dataclasses import dataclass
    from cai_workbench import pipeline as P
    from cai_workbench.core.config import ConfigBase

    @dataclass
    class OneConfig(ConfigBase):
        lr: float = 1.0

    def run_one(run, cfg, model="tiny", progress=True):
        with run.stage("sft") as d:
            (d/"adapter").mkdir(exist_ok=True); (d/"adapter"/"adapter_config.json").write_text("{}")
            (d/"metrics.json").write_text("{}")
            for stray in ["core.1234", "scratch.bin", "optimizer.pt", "notes.docx", "id.tfvars"]: (d/stray).write_text("x")
            (run.path/"stray.iso").write_text("x")
        return types.SimpleNamespace(summary=lambda: {"lr": cfg.lr})
    mod = types.ModuleType("one_stage"); mod.OneConfig, mod.run_one = OneConfig, run_one
    monkeypatch.setitem(sys.modules, "one_stage", mod)
    monkeypatch.setattr(P, "STAGES", {"sft": P.StageSpec("sft", "one_stage", "OneConfig", "run_one")})
    rd = tmp_path/"run"
    cfg = P.PipelineConfig.from_dict({"model": "tiny", "stages": ["sft"], "s3": "s3://bkt/pipe", "sync_after_stage": True})
    P.run_pipeline(cfg, run_dir=rd, progress=False)
    _, c = s3
    keys = sorted(o["Key"].removeprefix("pipe/") for o in c.list_objects_v2(Bucket="bkt", Prefix="pipe/")["Contents"])
    assert keys == ["config.yaml", "manifest.json", "sft/adapter/adapter_config.json", "sft/metrics.json"], keys
