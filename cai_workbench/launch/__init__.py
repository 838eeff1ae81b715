"What runs the pipeline somewhere or many times: SageMaker training jobs, sweeps, and time and cost estimates."
