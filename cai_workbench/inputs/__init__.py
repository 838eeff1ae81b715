"What an experiment is made of: constitutions (schema and formats), prompt sets, data filters and preference-pair files."
