"""Branch order: the order of independent branches changes how much is live at once.

At a fork (a residual block's shortcut and main branch, an Inception module's four branches)
the model's own order is one of several valid ones, and while one branch runs the outputs of
the branches already run wait for the join. Running first the branch that leaves the least
behind relative to what it needs lowers the peak (Sethi and Ullman's rule for expression trees).

`reorder` builds a topological order greedily: of the ops ready to run, the one whose step
would leave the fewest bytes live (its output, minus the inputs it reads last), ties broken by
the model's order; a branch is then run to its end before another starts only when that is
what keeps the live bytes lowest. The fused planner keeps the new order only if it lowers the
most bytes live at once (what a plan must hold or swap) and leaves the graph unchanged
otherwise, so a model already in its best order plans exactly as before.
"""

from __future__ import annotations

import dataclasses

from flashswap.model.graph import Graph
from flashswap.planner.lifetimes import live_per_step
from flashswap.planner.steps import build_steps

__all__ = ["reorder"]


def _greedy(graph: Graph) -> list[int]:
    nodes = graph.nodes
    producer = {o: k for k, n in enumerate(nodes) for o in n.outputs}
    readers: dict[str, int] = {}
    for n in nodes:
        for x in set(n.inputs):
            readers[x] = readers.get(x, 0) + 1
    deps = [{producer[x] for x in n.inputs if x in producer} for n in nodes]
    users: list[list[int]] = [[] for _ in nodes]
    for k, d in enumerate(deps):
        for j in d:
            users[j].append(k)
    waiting = [len(d) for d in deps]
    left = dict(readers)
    ready = [k for k, w in enumerate(waiting) if w == 0]
    order: list[int] = []
    keep = set(graph.outputs)
    while ready:
        def delta(k: int) -> tuple[int, int]:
            n = nodes[k]
            grow = sum(graph.tensors[o].nbytes for o in n.outputs)
            free = sum(graph.tensors[x].nbytes for x in set(n.inputs)
                       if left.get(x, 0) == 1 and x not in keep)
            return grow - free, k

        k = min(ready, key=delta)
        ready.remove(k)
        order.append(k)
        for x in set(nodes[k].inputs):
            left[x] = left.get(x, 0) - 1
        for u in users[k]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    return order


def reorder(graph: Graph) -> Graph:
    """The graph with its nodes in the order of lower peak (see the module docstring), or the
    graph itself if that order is no better."""
    order = _greedy(graph)
    if order == list(range(len(graph.nodes))) or len(order) != len(graph.nodes):
        return graph
    new = dataclasses.replace(graph, nodes=[graph.nodes[k] for k in order])
    before = int(live_per_step(build_steps(graph)).max(initial=0))
    after = int(live_per_step(build_steps(new)).max(initial=0))
    return new if after < before else graph
