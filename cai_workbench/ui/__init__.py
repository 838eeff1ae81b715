"What a researcher looks at: the critique and pair viewers, and the evaluation report with its plots and viewer."
