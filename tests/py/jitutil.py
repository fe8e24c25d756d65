"""Helpers shared by the exporter tests (import: from jitutil import freeze)."""

import torch


def freeze(module, attrs):
    """torch.jit.freeze inlines only with the optimizing graph executor on (conftest may turn it off)."""
    opt = torch._C._get_graph_executor_optimize()
    torch._C._set_graph_executor_optimize(True)
    try:
        return torch.jit.freeze(module.eval(), preserved_attrs=attrs)
    finally:
        torch._C._set_graph_executor_optimize(opt)
