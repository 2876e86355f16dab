"""Network components as configuration: how a LightningModule takes its network (an encoder, a head) as an
argument that ``--model.encoder some.Class --model.encoder.width 64`` swaps (jsonargparse ``class_path`` /
``init_args``), and saves it so that a checkpoint rebuilds it.

A LightningModule declares ``encoder: nn.Module = lazy_instance(DefaultEncoder, ...)``, then calls
``encoder = component_config(encoder)`` before ``save_hyperparameters()`` and ``self.encoder =
build_component(encoder)``. Under the CLI the argument arrives as a built module (Lightning saves its config
dict); in Python, as the shared ``lazy_instance`` default or a dict. A DataModule takes its tokenizer
(:mod:`kexue.text.tokenizers`) the same way. Sizes a component needs from the data (a tokenizer's ids per
embedding row) arrive by the task's links and every component takes them: nothing is pruned on a rebuild.
"""

from __future__ import annotations

from typing import Any, Iterable

from kexue.registry import import_object


def component_config(component: Any) -> Any:
    """A jsonargparse ``lazy_instance`` default as the ``{"class_path", "init_args"}`` dict the CLI saves for a
    component; anything else unchanged.

    Call it on the argument before ``save_hyperparameters()``: a ``lazy_instance`` default is ONE object shared by
    every call that leaves the argument out, and Lightning deep-copies the hyperparameters, which would build that
    object (drawing from the global RNG mid-``__init__``) and store a whole module in them. As a dict, a model built
    in Python saves what a model built by the CLI saves, and :func:`build_component` gives each model its own.
    """
    init_data = getattr(component, "lazy_get_init_data", None)
    return component if init_data is None else init_data().as_dict()


def build_component(component: Any) -> Any:
    """``component`` itself, or the object its ``{"class_path", "init_args"}`` dict describes: a network, or a
    DataModule's tokenizer (:mod:`kexue.text.tokenizers`), which is a component the same way."""
    if not isinstance(component, dict):
        return component
    return import_object(component["class_path"])(**component.get("init_args", {}))


class FittedComponent:
    """A component (a DataModule's tokenizer) that may have to learn from the training split before use
    (:attr:`fitted`, :meth:`fit`) and says how to rebuild itself with what it learnt (:meth:`config`): what a
    checkpoint keeps, as plain values, so that ``predict`` from the checkpoint alone behaves as training did.
    :class:`kexue.data.datamodule.FittedTokenizerData` drives it. Subclasses: the causal LMs' tokenizers
    (:mod:`kexue.models.lm_tokenizers`) and the BERT family's (:mod:`kexue.models.tokenizers`)."""

    @property
    def fitted(self) -> bool:
        """Whether the ids are fixed (``False``: :meth:`fit` must see the training texts first)."""
        return True

    def fit(self, texts: Iterable[str]) -> None:
        """Learn the ids from the training ``texts`` (nothing to learn for a fixed component)."""

    def init_args(self) -> dict:
        """The arguments that rebuild this component, with what :meth:`fit` learnt."""
        raise TypeError(f"{type(self).__name__} wraps a built object and cannot be saved as a component")

    def config(self) -> dict:
        """``{"class_path", "init_args"}``: how a checkpoint stores this component (plain values only)."""
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": self.init_args()}


__all__ = ["FittedComponent", "build_component", "component_config"]
