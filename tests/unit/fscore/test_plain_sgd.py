"""PlainSGD is torch.optim.SGD's update bit for bit, without importing torch's compiler (issue 19)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from fscore.trainers.plain_sgd import PlainSGD


@pytest.mark.parametrize(("momentum", "weight_decay"), [(0.0, 0.0), (0.9, 0.0), (0.5, 1e-3), (0.0, 1e-2)])
def test_plain_sgd_moves_the_model_exactly_as_torch_optim_sgd(momentum, weight_decay):
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    theirs = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    theirs.load_state_dict(ours.state_dict())
    a = PlainSGD(ours.parameters(), lr=0.05, momentum=momentum, weight_decay=weight_decay)
    b = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=momentum, weight_decay=weight_decay)
    x, y = torch.randn(40, 8), torch.randint(0, 3, (40,))
    for step in range(12):
        for model, opt in ((ours, a), (theirs, b)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[step % 4 * 10:][:10]), y[step % 4 * 10:][:10]).backward()
            opt.step()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert p.detach().numpy().tobytes() == q.detach().numpy().tobytes(), name


def test_a_torch_course_trains_without_importing_torchs_compiler():
    code = ("import sys; from fscore.config import load_config; from fscore.simulation.runner import run_standalone;"
            "from tests.conftest import ROOT;"
            "run_standalone(load_config(ROOT / 'examples' / 'digits_fedavg.yaml', ['rounds=1', 'participants=3']),"
            " progress=False);"
            "print(sorted(m for m in ('torch._dynamo', 'tensorflow', 'scipy', 'sklearn', 'matplotlib', 'networkx')"
            " if m in sys.modules))")
    from tests.conftest import ROOT

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
