"""Optimizers and optimizer wrappers that compose from config, for any task.

Posts: AdaFactor优化器浅析 (https://kexue.fm/archives/7302) for :class:`AdaFactor`; 6个派生优化器的简单介绍及其实现
(https://kexue.fm/archives/7094) for the wrappers :class:`DecoupledWeightDecay`, :class:`LayerAdaptation`,
:class:`Lookahead`, :class:`LazyUpdates` and the scheduler :class:`PiecewiseLinearLR`. Gradient accumulation
(用时间换取效果, https://kexue.fm/archives/6794) is Lightning's ``--trainer.accumulate_grad_batches``.

A wrapper takes the optimizer it wraps as a spec, so wrappers nest and any torch optimizer fits inside::

    kexue run sentiment --optimizer kexue.optim.Lookahead --optimizer.optimizer kexue.optim.AdaFactor

or in YAML (``conf/optim/lookahead.yaml``)::

    optimizer:
      class_path: kexue.optim.Lookahead
      init_args: {k: 5, alpha: 0.5, optimizer: {class_path: torch.optim.AdamW, init_args: {lr: 0.001}}}

The wrapper and the wrapped optimizer share their ``param_groups`` (the same dicts), so LR schedulers and
Lightning's LR monitor see one set of groups; ``state_dict`` holds both optimizers' states.
"""

from kexue.optim.groups import (
    adamw_one_cycle,
    component_param_groups,
    configure_optimizers,
    layerwise_lr_groups,
    module_param_groups,
    no_weight_decay_groups,
    scaled_param_groups,
)
from kexue.optim.optimizers import (
    AdaFactor,
    DecoupledWeightDecay,
    LayerAdaptation,
    LazyUpdates,
    Lookahead,
    OptimizerWrapper,
    PiecewiseLinearLR,
    build_optimizer,
    warmup_linear_decay,
)
from kexue.optim.riemannian import RiemannianSGD, sphere_sgd_step  # JoSE (https://kexue.fm/archives/7063)

__all__ = [
    "AdaFactor",
    "DecoupledWeightDecay",
    "LayerAdaptation",
    "LazyUpdates",
    "Lookahead",
    "OptimizerWrapper",
    "PiecewiseLinearLR",
    "RiemannianSGD",
    "adamw_one_cycle",
    "build_optimizer",
    "configure_optimizers",
    "component_param_groups",
    "layerwise_lr_groups",
    "module_param_groups",
    "no_weight_decay_groups",
    "scaled_param_groups",
    "sphere_sgd_step",
    "warmup_linear_decay",
]
