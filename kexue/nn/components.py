"""Network components as configuration: how a LightningModule takes its network (an encoder, a head) as an
argument that ``--model.encoder some.Class --model.encoder.width 64`` swaps (jsonargparse ``class_path`` /
``init_args``), and saves it so that a checkpoint rebuilds it.

A LightningModule declares ``encoder: nn.Module = lazy_instance(DefaultEncoder, ...)``, then calls
``encoder = component_config(encoder)`` before ``save_hyperparameters()`` and ``self.encoder =
build_component(encoder)``. Under the CLI the argument arrives as a built module (Lightning saves its config
dict); in Python, as the shared ``lazy_instance`` default or a dict.
"""

from __future__ import annotations

import inspect

from torch import nn

from kexue.registry import import_object


def component_config(component: nn.Module) -> nn.Module | dict:
    """A jsonargparse ``lazy_instance`` default as the ``{"class_path", "init_args"}`` dict the CLI saves for a
    component; anything else unchanged.

    Call it on the argument before ``save_hyperparameters()``: a ``lazy_instance`` default is ONE object shared by
    every call that leaves the argument out, and Lightning deep-copies the hyperparameters, which would build that
    object (drawing from the global RNG mid-``__init__``) and store a whole module in them. As a dict, a model built
    in Python saves what a model built by the CLI saves, and :func:`build_component` gives each model its own.
    """
    init_data = getattr(component, "lazy_get_init_data", None)
    return component if init_data is None else init_data().as_dict()


# Sizes a task links from its data into whichever encoder is chosen (``data.num_buckets`` ->
# ``model.encoder.init_args.num_embeddings``...). jsonargparse writes them into the saved config even for an encoder
# without such an argument (a BERT component tokenises by its own vocabulary), so a rebuild drops them there.
LINKED_SIZES = ("num_embeddings", "num_features")


def prune_linked_sizes(component: dict) -> dict:
    """A ``{"class_path", "init_args"}`` dict without the :data:`LINKED_SIZES` arguments its class does not take
    (any other argument stays: an unknown one is still an error where the dict is built)."""
    cls = import_object(component["class_path"])
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return component
    args = {k: v for k, v in component.get("init_args", {}).items() if k in params or k not in LINKED_SIZES}
    return {**component, "init_args": args}


def build_component(component: nn.Module | dict) -> nn.Module:
    """``component`` itself, or the module its ``{"class_path", "init_args"}`` dict describes
    (:func:`prune_linked_sizes` first)."""
    if not isinstance(component, dict):
        return component
    component = prune_linked_sizes(component)
    return import_object(component["class_path"])(**component["init_args"])


__all__ = ["LINKED_SIZES", "build_component", "component_config", "prune_linked_sizes"]
