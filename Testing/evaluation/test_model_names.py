"""Tables name a model for what it is: the paper's SADM, or how it departs from it."""

from sadm.config import preset
from sadm.evaluation.naming import model_name


def test_a_bidirectional_model_is_not_named_the_papers_sadm():
    assert model_name(preset("tiny")) == "SADM"
    bidirectional = preset("tiny").updated({"attention": {"context": "bidirectional"}})
    assert model_name(bidirectional) == "SADM (bidirectional context)"
    ablation = bidirectional.updated({"variant": "attention-only"})
    assert model_name(ablation) == "attention-only (bidirectional context)"
    regressing = preset("tiny").updated({"diffusion": {"conditioning_loss": 1.0}})
    assert model_name(regressing) == "SADM + L2 on c (w=1)"
