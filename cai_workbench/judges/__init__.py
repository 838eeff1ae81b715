"Judges of answers behind one protocol and registry: rule-based refusal and principle judges, the AI judge, contemplative measures."
# The protocol and the registry, importable from the package as before the layout change (`from cai_workbench.judges
# import get_judge`); a judge module registers itself with `@register_judge` when it is imported.
from .rules import JUDGES, Judge, JudgeContext, Metric, get_judge, register_judge
