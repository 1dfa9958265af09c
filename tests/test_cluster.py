"""A real two-node Ray cluster on this machine (a head and a second node joined with `ray start --address`, each
with its own resources), and rollout workers' placement groups spread or packed over its nodes. The documented
cluster commands (`ray start`, `ray job submit --working-dir .`, `ray stop`) run in tests/test_docs_commands.py."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minazr.bench.scale import local_two_node_cluster

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def two_node_cluster():
    """1 CPU per node: a 1-CPU worker fits each node once."""
    with local_two_node_cluster(1) as cluster:
        yield cluster


PLACE = """
import json, sys, time
import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from minazr.driver.config import RolloutConfig
from rollout.placement import Slots

ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
where = ray.remote(num_cpus=1)(lambda: ray.get_runtime_context().get_node_id())
nodes = {}
for strategy in ("pack", "strict_spread"):
    while ray.available_resources().get("CPU", 0) < 4:  # a removed group frees its CPUs asynchronously, and a
        time.sleep(0.2)                                  # PACK group that cannot pack at once spreads instead
    group = Slots(RolloutConfig(num_workers=2, num_cpus=1, placement=strategy)).startup
    nodes[strategy] = ray.get([where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
        group, placement_group_bundle_index=i)).remote() for i in range(2)], timeout=120)
    ray.util.remove_placement_group(group)
print(json.dumps(nodes))
"""


def test_placement_strategies_spread_or_pack_two_cpu_nodes():
    """With 2 CPUs per node, two 1-CPU workers fit on one node: strict_spread must still split them, pack must
    put them together (with 1-CPU nodes any strategy, even none, would put one per node). The placement group is
    the pool's own (rollout.placement.Slots); the actors on its bundles report their nodes."""
    with local_two_node_cluster(2) as (_, address, env):
        res = subprocess.run([sys.executable, "-c", PLACE, address], env=env, capture_output=True, text=True,
                             timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    nodes = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(set(nodes["strict_spread"])) == 2 and len(set(nodes["pack"])) == 1, nodes
