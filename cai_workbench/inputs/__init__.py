"What an experiment is made of: constitutions (schema and formats), prompt sets, data filters and preference-pair files."
from . import constitution_formats as _constitution_formats   # registers the markdown and paper-prompt readers with `constitution.load_constitution`
