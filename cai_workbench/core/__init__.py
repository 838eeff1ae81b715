"The foundations every layer stands on: configs, files, the run folder, environment, statistics, guards, checkpoints, tracking and S3 sync."
# `from cai_workbench.core import Run` is documented in the README and keeps working after the layout change.
from .run import Run
