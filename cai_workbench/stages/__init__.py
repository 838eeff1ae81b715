"The pipeline stages, one module each, named as the stage: `run_<stage>(run, config)` reads earlier stages and writes its own folder."
