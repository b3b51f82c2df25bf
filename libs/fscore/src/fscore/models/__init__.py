"""Model zoo: backend-independent layouts here; framework twins in ``torch_zoo`` (imported on demand)."""

from fscore.models.zoo import MODELS, ModelSpec, init_params, layout, zoo_layout

__all__ = ["MODELS", "ModelSpec", "init_params", "layout", "zoo_layout"]
