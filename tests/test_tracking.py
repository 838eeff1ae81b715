"Tracking: a TRL stage inside a tracked run logs to MLflow (nested stage run) and TensorBoard, read back from the local store and event files."
from cai_workbench.core import Run
from cai_workbench.sft import SFTStageConfig, run_sft
from cai_workbench.tracking import Tracker, read_mlflow, read_tensorboard, report_args

from test_checkpoints import sft_run


def test_sft_logs_to_mlflow_and_tensorboard(tmp_path):
    run = sft_run(tmp_path/"runs"/"r")
    assert report_args("sft") == {"report_to": "none"}                  # nothing is tracked outside a tracker
    cfg = SFTStageConfig.from_dict({"lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "max_steps": 3, "batch_size": 2, "device": "cpu"})
    with Tracker(run, ["mlflow", "tensorboard"], config={"sft": cfg.to_dict(), "name": "r"}) as t:
        with t.stage("sft"): run_sft(run, cfg, model="tiny", progress=False)
    got = read_mlflow(run.path)
    assert got["params"]["sft.max_steps"] == "3" and "manifest.json" in got["artifacts"]
    assert [s for s, _ in got["stages"]["sft"]["loss"]] == [1, 2, 3]    # TRL's MLflowCallback wrote into our nested stage run
    tb = read_tensorboard(run.path/"tensorboard"/"sft")
    assert [s for s, _ in tb["train/loss"]] == [1, 2, 3]
    assert [v for _, v in tb["train/loss"]] == [v for _, v in got["stages"]["sft"]["loss"]]
    assert (tmp_path/"runs"/"mlruns").is_dir()                           # a local file store beside the run folders, no server
