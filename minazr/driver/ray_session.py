"""Joining Ray, and calling remote actors with a deadline: what every command that starts workers shares.

`connect_ray` joins the cluster named by `train.ray_address` or $RAY_ADDRESS, or starts a private one;
`remote_call` turns a timeout or a dead actor into one TrainError line that names what was being done.
"""

import logging
import os
import socket


class TrainError(RuntimeError):
    """A run that cannot start or continue; the message is one line for the user."""


def connect_ray(train_cfg) -> None:
    """Join the cluster of `train.ray_address` or $RAY_ADDRESS ('auto', 'local', host:port, ray://...); with
    neither, join the cluster `ray start` runs on this machine, else start a private one."""
    import ray

    from rollout.worker import WORKER_ENV

    if ray.is_initialized():
        return
    address = check_reachable(train_cfg)
    kwargs = dict(logging_level=logging.WARNING, runtime_env={"env_vars": WORKER_ENV},
                  log_to_driver=train_cfg.worker_logs)
    try:
        ray.init(address=address or None, include_dashboard=False if not address else None, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise TrainError(f"cannot start or join Ray (address {address or 'local'}): "
                         f"{(str(e).splitlines() or [type(e).__name__])[0][:200]}") from None


def check_reachable(train_cfg) -> str | None:
    """The cluster address to join (None: a private one); a host:port nobody answers on is a TrainError now,
    before a command loads a model or starts anything."""
    address = train_cfg.ray_address or os.environ.get("RAY_ADDRESS") or None
    if address and address not in ("auto", "local") and not address.startswith("ray://"):
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except (OSError, ValueError) as e:
            raise TrainError(f"cannot reach the Ray cluster at {address}: {getattr(e, 'strerror', None) or e} "
                             f"(train.ray_address / RAY_ADDRESS)") from None
    return address


def remote_call(ray, ref, timeout_s: float, what: str, resumable: bool = True):
    """ray.get with a deadline; a timeout or a dead actor becomes a TrainError naming what was being done."""
    from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

    from minazr.contracts.policy import root_cause

    try:
        return ray.get(ref, timeout=timeout_s)
    except GetTimeoutError:
        raise TrainError(f"timed out after {timeout_s:.0f} s waiting to {what} (rollout.timeout_s)") from None
    except (RayActorError, RayTaskError) as e:
        hint = "; resume with `minazr train --resume RUN_DIR`" if resumable else ""
        raise TrainError(f"failed to {what}: {root_cause(e)}{hint}") from None
