"""Completeness checking (paper §3.2): the directed message-flow graph of a course.

Nodes are the handlers in effect at each role. Edges go from a handler to the handler that
receives each message type it declares to emit, and from a message handler to every condition
that watches that message type. A course is complete when every emitted type has a handler at
its receiving role and the participants' ``finish`` handler is reachable from the start (where
join_in is sent). Problems fail the run; ``fscope check`` prints them and draws the graph.

The check runs at every start, so the graph is a small :class:`Digraph` of its own: importing networkx
took 0.46 s of a course's start-up (issue 19). networkx is imported only to draw it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fscore.errors import CompletenessError
from fscore.events import START, Event, on_message
from fscore.message import FINISH, PARTICIPANT, MessageCatalog
from fscore.worker import BaseWorker


def _node(role: str, event: Event) -> str:
    return f"{role}/{event}"


@dataclass
class Digraph:
    """Nodes and directed edges with attributes (``label``, ``missing``), as networkx's DiGraph keeps them."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def add_node(self, node: str, **attrs: Any) -> None:
        self.nodes.setdefault(node, {}).update(attrs)

    def add_edge(self, a: str, b: str, **attrs: Any) -> None:
        self.add_node(a)
        self.add_node(b)
        self.edges.setdefault((a, b), {}).update(attrs)

    def __contains__(self, node: object) -> bool:
        return node in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def descendants(self, start: str) -> set[str]:
        """Every other node reachable from ``start`` (as networkx.descendants: never ``start`` itself)."""
        out: dict[str, list[str]] = {}
        for a, b in self.edges:
            out.setdefault(a, []).append(b)
        seen: set[str] = set()
        todo = list(out.get(start, []))
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo += out.get(node, [])
        return seen - {start}

    def union(self, other: Digraph) -> Digraph:
        """Both graphs' nodes and edges; where both have an attribute, ``other``'s wins (as networkx.compose)."""
        merged = Digraph({n: dict(a) for n, a in self.nodes.items()}, {e: dict(a) for e, a in self.edges.items()})
        for node, attrs in other.nodes.items():
            merged.add_node(node, **attrs)
        for (a, b), attrs in other.edges.items():
            merged.add_edge(a, b, **attrs)
        return merged

    def to_networkx(self) -> Any:
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.nodes.items())
        graph.add_edges_from((a, b, attrs) for (a, b), attrs in self.edges.items())
        return graph


@dataclass
class FlowGraph:
    graph: Digraph
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            raise CompletenessError(self.problems)

    def to_dot(self) -> str:
        lines = ["digraph course {", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
        for node, data in self.graph.nodes.items():
            style = ', style=filled, fillcolor="#fde2e2"' if data.get("missing") else ""
            lines.append(f'  "{node}" [label="{data.get("label", node)}"{style}];')
        for (a, b), data in self.graph.edges.items():
            lines.append(f'  "{a}" -> "{b}" [label="{data.get("label", "")}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_png(self, path: str | Path) -> None:
        import matplotlib
        import networkx as nx

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        graph = self.graph.to_networkx()
        fig, ax = plt.subplots(figsize=(14, 8))
        pos = nx.shell_layout(graph) if len(graph) > 2 else nx.spring_layout(graph, seed=0)
        colors = ["#f4a6a6" if d.get("missing") else ("#a6c8f4" if n.startswith("coordinator") else "#b6e3b0")
                  for n, d in graph.nodes(data=True)]
        nx.draw_networkx(graph, pos, ax=ax, node_color=colors, node_size=2200, font_size=7,
                         labels={n: d.get("label", n).replace(" ", "\n") for n, d in graph.nodes(data=True)},
                         arrowsize=14)
        edge_labels = {(a, b): d.get("label", "") for a, b, d in graph.edges(data=True)}
        nx.draw_networkx_edge_labels(graph, pos, ax=ax, font_size=7, edge_labels=edge_labels)
        ax.set_title("fscope message flow (blue: coordinator, green: participant, red: missing handler)")
        ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def build_flow_graph(workers: Sequence[BaseWorker], catalog: MessageCatalog) -> FlowGraph:
    """The flow graph of one worker per role (handler tables are per role, not per worker)."""
    by_role = {w.role: w for w in workers}
    graph = Digraph()
    problems: list[str] = []
    for worker in by_role.values():
        for entry in worker.handlers.entries():
            label = f"{worker.role} {entry.event}\n{entry.handler_name}"
            graph.add_node(_node(worker.role, entry.event), label=label)
            if entry.event.kind == "condition" and entry.event.name not in worker.conditions:
                problems.append(f"{worker.role} has a handler for {entry.event} but no condition named "
                                f"{entry.event.name!r} is defined")
    for worker in by_role.values():
        for entry in worker.handlers.entries():
            src = _node(worker.role, entry.event)
            companions = {c for t in entry.emits for c in worker.companions_of(t)}
            for type_name in sorted({*entry.emits, *companions}):
                _add_emit_edge(graph, problems, by_role, catalog, worker, entry.handler_name, src, type_name)
            if entry.event.kind == "message":
                for cond in worker.conditions.values():
                    if entry.event.name in cond.watches and worker.handlers.get(Event("condition", cond.name)):
                        graph.add_edge(src, _node(worker.role, Event("condition", cond.name)), label="then")
    start, finish = _node(PARTICIPANT, START), _node(PARTICIPANT, on_message(FINISH))
    if start not in graph:
        problems.append("participants have no start handler, so nobody sends join_in")
    elif finish not in graph:
        problems.append("participants have no handler for 'finish'")
    elif finish != start and finish not in (reachable := graph.descendants(start)):
        reachable = sorted(reachable)
        problems.append(f"'finish' is not reachable from join_in; reachable handlers: {reachable}")
    return FlowGraph(graph, problems)


def _add_emit_edge(graph: Digraph, problems: list[str], by_role: dict[str, BaseWorker], catalog: MessageCatalog,
                   worker: BaseWorker, handler_name: str, src: str, type_name: str) -> None:
    where = f"{worker.role} handler {handler_name} emits {type_name!r}"
    try:
        role = catalog.receiver_role(type_name)
    except KeyError:
        problems.append(f"{where}, which is not a registered message type")
        return
    receiver = by_role.get(role)
    event = on_message(type_name)
    dst = _node(role, event)
    if receiver is None or receiver.handlers.get(event) is None:
        problems.append(f"{where} but the {role} has no handler for {type_name!r}")
        graph.add_node(dst, label=f"{role} {event}\n(no handler)", missing=True)
    graph.add_edge(src, dst, label=type_name)


def check_variants(coordinator: BaseWorker, participants: Mapping[str, BaseWorker], catalog: MessageCatalog
                   ) -> FlowGraph:
    """The flow graph of a course whose participants do not all have the same handlers (plug-ins given to
    some): the coordinator with each variant in turn, each named by ``participants``' key. One graph,
    the union; every problem says which participants it concerns when there is more than one variant."""
    graph = Digraph()
    problems: list[str] = []
    for label, participant in participants.items():
        flow = build_flow_graph([coordinator, participant], catalog)
        graph = graph.union(flow.graph)
        prefix = f"{label}: " if len(participants) > 1 else ""
        problems += [f"{prefix}{p}" for p in flow.problems if f"{prefix}{p}" not in problems]
    return FlowGraph(graph, problems)


def check_course(workers: Sequence[BaseWorker], catalog: MessageCatalog) -> FlowGraph:
    flow = build_flow_graph(workers, catalog)
    flow.raise_for_problems()
    return flow
