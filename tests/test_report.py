"The evaluation report's figures show what the table shows."
from cai_workbench.core.stats import rate
from cai_workbench.ui.report import plot_helpful_harmless


def test_helpful_harmless_x_is_answered_benign_with_its_interval():
    "A collapsed policy (never refuses, but 3 of 4 benign answers empty or looping) plots at 25% answered, not at 1 - over-refusal = 100%."
    m = {"n_benign": 4, "n_harmful": 4, **rate([0, 0, 0, 0]).fields("over_refusal_benign"), **rate([1, 0, 0, 0]).fields("answered_benign"),
         **rate([1, 1, 0, 0]).fields("refusal_harmful")}
    fig = plot_helpful_harmless({"stages": ["collapsed"], "metrics": {"collapsed": m}})
    ax = fig.axes[0]
    (x, y), = ax.collections[0].get_offsets().tolist()
    assert (x, y) == (0.25, 0.5)
    bars = [c for c in ax.collections[1:] if len(c.get_segments()) and c.get_segments()[0][0][1] == c.get_segments()[0][1][1]]
    (x0, _), (x1, _) = bars[0].get_segments()[0]                     # the horizontal error bar: answered_benign's interval
    assert (round(x0, 4), round(x1, 4)) == tuple(m["answered_benign_ci"])
