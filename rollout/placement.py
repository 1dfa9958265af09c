"""Where rollout workers run: the start-up placement group (one bundle per worker, rollout.placement's strategy)
and, for workers that join a running job (`minazr scale`), a one-bundle group each, reserved before the worker is
started so that a count the cluster cannot hold is refused instead of left pending.

    slots = Slots(cfg)                 # reserves the start-up bundles; PoolError if the cluster cannot hold them
    slots.place([3])                   # reserve room for worker slot 3 (a joiner); PoolError if there is none
    slots.options(3)                   # Ray actor options that put slot 3's actor there
    slots.release(3)                   # the joiner left: its group is removed (start-up bundles stay reserved)

A start-up bundle whose worker left stays reserved, and the next joiner in that slot takes it again at once.
Joiners' groups are separate groups, so strict_spread cannot keep a joiner off a node that already has a worker:
on a cluster, joiners go wherever Ray finds room (docs/cluster.md).
"""

import threading

import ray
from ray.exceptions import GetTimeoutError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from minazr.contracts.policy import PoolError


def bundle_of(cfg) -> dict:
    return {"CPU": cfg.num_cpus, **({"GPU": cfg.num_gpus} if cfg.num_gpus else {})}


class Slots:
    def __init__(self, cfg):
        self.cfg = cfg
        self.bundle = bundle_of(cfg)
        self._lock = threading.Lock()  # place() runs on the driver's control thread, release() on its main one
        self.uses_groups = cfg.placement != "none" and (cfg.num_cpus > 0 or cfg.num_gpus > 0)
        self.startup = self._startup_group() if self.uses_groups else None
        self.where: dict[int, tuple] = {i: (self.startup, i) for i in range(cfg.num_workers)} \
            if self.startup is not None else {}

    def _startup_group(self):
        cfg = self.cfg
        group = placement_group([dict(self.bundle)] * cfg.num_workers, strategy=cfg.placement.upper())
        try:
            ray.get(group.ready(), timeout=min(cfg.timeout_s, 120.0))
        except GetTimeoutError:
            remove_placement_group(group)
            raise PoolError(f"cannot place {cfg.num_workers} rollout workers of {self.bundle} with strategy "
                            f"{cfg.placement!r}: the cluster has {_free()} free (rollout.num_workers, "
                            "rollout.num_cpus, rollout.num_gpus, rollout.placement)") from None
        return group

    def place(self, slots: list[int]) -> None:
        """Reserve room for a worker in each of `slots`, all waiting together up to rollout.scale_timeout_s (long
        enough for an autoscaler to bring up a node); PoolError, with nothing reserved, when the cluster has not
        room for all of them."""
        with self._lock:
            slots = [s for s in slots if s not in self.where]  # start-up bundles free again since their worker left
        if not slots:
            return
        if not self.uses_groups:
            if self.cfg.placement == "none" and not _fits(self.bundle, len(slots)):
                raise PoolError(f"no room for {len(slots)} more rollout worker(s) of {self.bundle}: the cluster "
                                f"has {_free()} free")
            return
        groups = [placement_group([dict(self.bundle)], strategy="PACK") for _ in slots]
        try:
            ray.get([g.ready() for g in groups], timeout=self.cfg.scale_timeout_s)
        except GetTimeoutError:
            for g in groups:
                remove_placement_group(g)
            raise PoolError(f"no room for {len(slots)} more rollout worker(s) of {self.bundle} within "
                            f"{self.cfg.scale_timeout_s:.0f} s (rollout.scale_timeout_s): the cluster has "
                            f"{_free()} free") from None
        with self._lock:
            self.where.update({s: (g, 0) for s, g in zip(slots, groups)})

    def options(self, slot: int) -> dict:
        with self._lock:
            if slot not in self.where:
                return {}
            group, index = self.where[slot]
        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)}

    def release(self, slot: int) -> None:
        """The worker in `slot` left for good: a joiner's own group is removed; a start-up bundle stays."""
        with self._lock:
            group, _ = self.where.get(slot, (None, 0))
            if group is None or group is self.startup:
                return
            del self.where[slot]
        remove_placement_group(group)

    def close(self) -> None:
        with self._lock:
            joiners = [s for s, (g, _) in self.where.items() if g is not self.startup]
        for slot in joiners:
            self.release(slot)
        if self.startup is not None:
            remove_placement_group(self.startup)
            self.startup = None
        self.where.clear()


def _free() -> dict:
    return {k: v for k, v in ray.available_resources().items() if k in ("CPU", "GPU")}


def _fits(bundle: dict, count: int) -> bool:
    free = ray.available_resources()
    return all(free.get(k, 0.0) >= count * v for k, v in bundle.items())
