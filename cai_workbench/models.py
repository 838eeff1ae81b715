"Where `load_model` and `Generator` were before the package was laid out in subpackages (the README's imports)."
# `from cai_workbench.models import load_model, Generator` is documented in the README and keeps working; new code
# imports from `cai_workbench.engine.models` and `cai_workbench.engine.generator` (the README's "What moved" table).
from .engine.models import load_model
from .engine.generator import Generator, GenerationConfig

__all__ = ["load_model", "Generator", "GenerationConfig"]
