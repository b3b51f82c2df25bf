import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fscore.config import load_config
from fscore.course import CourseBuilder
from fscore.errors import CompletenessError
from fscore.events import on_message
from fscore.flowgraph import build_flow_graph, check_course
from fscore.trainers.base import NoOpTrainer

from .helpers import ListOutbox

FIXTURES = Path(__file__).parent / "fixtures"


def _workers(config):
    builder = CourseBuilder(config)
    return builder, [builder.coordinator(ListOutbox()), builder.participant(0, ListOutbox(), trainer=NoOpTrainer())]


def test_default_course_is_complete(example_config):
    builder, workers = _workers(load_config(example_config, ["participants=3"]))
    flow = check_course(workers, builder.catalog)
    assert "participant/message:finish" in flow.graph
    assert "digraph course" in flow.to_dot()


def test_emitted_type_without_handler_fails(example_config):
    builder, (coordinator, participant) = _workers(load_config(example_config, ["participants=3"]))
    builder.catalog.register("shout", "participant", {"type": "record", "name": "Shout",
                                                      "fields": [{"name": "text", "type": "string"}]})
    with pytest.warns(UserWarning, match="overwrites"):
        coordinator.register(on_message("join_in"), coordinator.on_join_in, emits=["assign_id", "shout"])
    flow = build_flow_graph([coordinator, participant], builder.catalog)
    assert flow.problems == ["coordinator handler Coordinator.on_join_in emits 'shout' but the participant has no "
                             "handler for 'shout'"]
    with pytest.raises(CompletenessError):
        flow.raise_for_problems()


def test_unreachable_finish_fails(example_config):
    builder, (coordinator, participant) = _workers(load_config(example_config, ["participants=3"]))
    # Participants that take the model but never report back: nothing leads to finish any more.
    with pytest.warns(UserWarning):
        participant.register(on_message("model_parameters"), lambda msg: None, emits=[])
    problems = build_flow_graph([coordinator, participant], builder.catalog).problems
    assert len(problems) == 1 and "'finish' is not reachable from join_in" in problems[0]


def _write_config(tmp_path, example_config, **extra):
    raw = yaml.safe_load(example_config.read_text())
    raw.update(extra)
    path = tmp_path / "course.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_fscope_check_fails_on_a_config_whose_emitted_type_has_no_handler(tmp_path, example_config):
    path = _write_config(
        tmp_path, example_config,
        message_types=[{"name": "shout", "receiver": "participant", "schema_file": str(FIXTURES / "shout.avsc")}],
        handlers=[{"role": "coordinator", "event": "message:metrics",
                   "handler": "tests.unit.fscore.fixtures.custom_handlers:announce", "emits": ["shout"]}])
    proc = subprocess.run([sys.executable, "-m", "fscore.cli", "check", str(path), "--graph", str(tmp_path / "g")],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[3])
    assert proc.returncode == 1, proc.stderr
    assert "emits 'shout' but the participant has no handler for 'shout'" in proc.stderr
    assert "overwrites" in proc.stderr  # the user handler replaced the default metrics handler, with a warning
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_fscope_check_passes_the_example(tmp_path, example_config):
    proc = subprocess.run([sys.executable, "-m", "fscore.cli", "check", str(example_config),
                           "--graph", str(tmp_path / "g")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "check passed" in proc.stdout
    assert "message:join_in -> Coordinator.on_join_in emits [assign_id, refuse]" in proc.stdout


def test_the_flow_graph_reaches_what_networkx_reaches(example_config):
    """The check's own small graph (networkx cost 0.46 s of every start) against networkx on the same graph."""
    import networkx as nx

    builder, workers = _workers(load_config(example_config, ["participants=3"]))
    flow = check_course(workers, builder.catalog)
    graph = flow.graph.to_networkx()
    assert set(graph.nodes) == set(flow.graph.nodes) and set(graph.edges) == set(flow.graph.edges)
    for node in flow.graph.nodes:
        assert flow.graph.descendants(node) == nx.descendants(graph, node), node
    doubled = flow.graph.union(flow.graph)
    assert doubled.nodes == flow.graph.nodes and doubled.edges == flow.graph.edges
