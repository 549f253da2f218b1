"""Training and inference over several processes on JAX's own distributed runtime.

After :func:`initialize` (``jax.distributed.initialize`` with its timeouts set explicitly),
``fit``, ``evaluate`` and ``predict`` run as one SPMD program over every process's devices:
the mesh is :func:`global_mesh` (all devices, one ``"data"`` axis), the model and optimizer
state are replicated on it, and every global batch is sharded over its first axis, each
process placing the rows its own devices hold. What a process must hold:

* in-memory arrays (the common case): **all** the data, the same on every process (the same
  files, read the same way). Every process draws the same shuffle from the run's seed and
  places its own rows of each global batch; nothing else is needed;
* an iterable of batches: **its own part** of every global batch, the rows
  :func:`process_rows` names (for the default mesh, the process's contiguous block), the same
  number of batches on every process.

The model must be loaded from the same file on every process. Process 0 (:func:`is_primary`)
writes logs, draws progress and prints; checkpoints are orbax's multi-process ones.

A peer that dies, or never arrives, is handled by JAX's coordination service: after
``heartbeat_timeout`` seconds without a peer's heartbeat (``initialization_timeout`` at the
start) it ends every other process, from C++ (``SIGABRT``, exit status 134, with JAX's
"another task died" message); no Python code of ours can run after that, so nothing hangs and
no checkpoint is half written (orbax commits a checkpoint by renaming it once complete).
JAX's experimental ``jax_enable_recoverability`` would let the survivors go on, but their next
collective then waits for the dead peer (forever, unless the backend has a collective timeout
of its own), so it is left off.
"""

from __future__ import annotations

import itertools
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxlstm._src.errors import JaxLSTMError

# Our defaults for JAX's timeouts (JAX's own: 300 s to start, 100 s of missed heartbeats).
INITIALIZATION_TIMEOUT = 300
HEARTBEAT_TIMEOUT = 60


class DistributedError(JaxLSTMError, RuntimeError):
    """A multi-process run that cannot go on as asked: the runtime did not start, processes
    disagree on their data, or a batch cannot be split over the processes."""


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    initialization_timeout: int = INITIALIZATION_TIMEOUT,
    heartbeat_timeout: int = HEARTBEAT_TIMEOUT,
    shutdown_timeout: int | None = None,
) -> None:
    """``jax.distributed.initialize`` with explicit timeouts; call it first, before any other
    JAX work. Without arguments JAX detects SLURM, Open MPI and Cloud TPU (or reads
    ``JAX_COORDINATOR_ADDRESS``...); elsewhere pass ``coordinator="host:port"`` (process 0's
    address), ``num_processes`` and ``process_id``.

    Args:
      initialization_timeout: seconds every process waits for all the others to arrive.
      heartbeat_timeout: seconds without a peer's heartbeat after which the runtime ends
        the other processes (a dead peer is noticed within about this bound).
      shutdown_timeout: seconds a finishing process waits for the others (default: the
        heartbeat timeout).

    Raises:
      DistributedError: the arguments are incomplete, or JAX was already started.
    """
    if (num_processes is None) != (process_id is None) or (
        coordinator is not None and num_processes is None
    ):
        raise DistributedError(
            f"received coordinator={coordinator!r}, num_processes={num_processes!r}, "
            f"process_id={process_id!r}; pass all three (--coordinator HOST:PORT "
            "--num-processes N --process-id K), or none under SLURM / Open MPI / Cloud TPU."
        )
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise DistributedError(
            f"process_id={process_id} for num_processes={num_processes}; expected "
            f"0 <= process_id < {num_processes}."
        )
    try:
        jax.distributed.initialize(
            coordinator,
            num_processes,
            process_id,
            initialization_timeout=int(initialization_timeout),
            heartbeat_timeout_seconds=int(heartbeat_timeout),
            shutdown_timeout_seconds=int(
                heartbeat_timeout if shutdown_timeout is None else shutdown_timeout
            ),
        )
    except (RuntimeError, ValueError) as err:  # JAX's own refusals, before any connection
        raise DistributedError(
            f"jax.distributed.initialize failed ({err}); call it once, first, before any "
            "other JAX work, with the coordinator address, process count and id (or under "
            "a launcher JAX detects: SLURM, Open MPI, Cloud TPU)."
        ) from None


def launcher() -> str | None:
    """The launcher of a multi-process job this process belongs to, from its environment
    (what ``jax.distributed.initialize()`` then reads), or None: SLURM (``srun``, more than
    one task), Open MPI (``mpirun``, more than one rank) or JAX's own variables."""
    env = os.environ
    if env.get("JAX_COORDINATOR_ADDRESS"):
        return "JAX_COORDINATOR_ADDRESS"
    if env.get("SLURM_JOB_ID") and int(env.get("SLURM_NTASKS", "1") or 1) > 1:
        return "SLURM"
    if int(env.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1:
        return "Open MPI"
    return None


def is_primary() -> bool:
    """Whether this is process 0, the one that writes logs, progress and model files."""
    return jax.process_index() == 0


def is_multiprocess() -> bool:
    return jax.process_count() > 1


def global_mesh(axis: str = "data") -> Mesh:
    """Every process's devices on one data-parallel axis (process 0's devices first)."""
    return Mesh(np.array(jax.devices()), (axis,))


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (no-op with one process)."""
    if is_multiprocess():
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def process_rows(global_batch_size: int, mesh: Mesh | None = None) -> slice:
    """The rows of a global batch of ``global_batch_size`` examples that this process feeds
    (its devices' shards along the mesh's first axis), for an iterable of batches: process
    ``p`` yields ``global_batch[process_rows(n)]`` for every global batch.

    Raises:
      DistributedError: the batch does not split evenly over the devices, or this process's
        rows are not one contiguous block (a mesh of another layout).
    """
    mesh = global_mesh() if mesh is None else mesh
    n_dev = mesh.devices.shape[0]
    if global_batch_size % n_dev:
        raise DistributedError(
            f"a global batch of {global_batch_size} does not split over the mesh's {n_dev} "
            f"devices; give batch sizes that are multiples of {n_dev}."
        )
    index = data_sharding(mesh).addressable_devices_indices_map((global_batch_size,))
    starts = sorted({s[0].indices(global_batch_size)[:2] for s in index.values()})
    for (_, stop), (start, _) in itertools.pairwise(starts):
        if stop != start:
            raise DistributedError(
                f"process {jax.process_index()} holds rows {starts} of each global batch, "
                "not one block; build the mesh from jax.devices() in order (global_mesh())."
            )
    return slice(starts[0][0], starts[-1][1])


def data_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(mesh.axis_names[0]))


def _is_key(leaf) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def replicate(tree, mesh: Mesh):
    """Every leaf replicated on ``mesh`` (each process gives its own, equal, copy)."""
    sharding = NamedSharding(mesh, P())

    def put(leaf):
        if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
            return leaf
        if _is_key(leaf):
            data = jax.device_put(np.asarray(jax.random.key_data(leaf)), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        # from the host: a device array of this process's would be a cross-host transfer
        return jax.device_put(np.asarray(leaf), sharding)

    return jax.tree.map(put, tree)


def to_local(tree):
    """Replicated global arrays back to this process's own (default-device) arrays."""

    def get(leaf):
        if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
            return leaf
        if _is_key(leaf):
            data = np.asarray(jax.random.key_data(leaf).addressable_data(0))
            return jax.random.wrap_key_data(jax.device_put(data), impl=jax.random.key_impl(leaf))
        return jax.device_put(np.asarray(leaf.addressable_data(0)))

    return jax.tree.map(get, tree)


def place_global(batch, mesh: Mesh):
    """A global batch that every process holds whole: each process places its own rows;
    a batch that does not split over the devices (an epoch's smaller last batch) is
    replicated instead (the same numbers, computed on every device)."""
    n = int(np.shape(jax.tree.leaves(batch)[0])[0])
    sharding = data_sharding(mesh) if n % mesh.devices.shape[0] == 0 else NamedSharding(mesh, P())

    def put(a):
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, sharding, lambda idx: a[idx])

    return jax.tree.map(put, batch)


def place_local(batch, mesh: Mesh):
    """A batch of which each process holds its own rows (:func:`process_rows`)."""
    sharding = data_sharding(mesh)
    local = len(mesh.local_devices)
    n = int(np.shape(jax.tree.leaves(batch)[0])[0])
    if n % local:
        raise DistributedError(
            f"process {jax.process_index()} gave a batch of {n} rows, which does not split "
            f"over its {local} devices; every process yields the same number of rows per "
            "batch, a multiple of its device count (drop or pad the last batch)."
        )
    return jax.tree.map(
        lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), batch
    )


_SAME_DATA = (
    "with in-memory arrays every process passes all the data, the same on each. For data "
    "that only parts of are on each process, pass an iterable of batches."
)


def check_same(value: int, what: str, advice: str = _SAME_DATA) -> None:
    """Every process has the same ``value`` (e.g. the number of examples), else an error."""
    if not is_multiprocess():
        return
    from jax.experimental import multihost_utils

    values = np.asarray(multihost_utils.process_allgather(np.asarray(value, np.int32)))
    if len(set(values.ravel().tolist())) > 1:
        raise DistributedError(
            f"the processes disagree on {what}: {values.ravel().tolist()} (by process); {advice}"
        )


def broadcast(values: list[float]) -> list[float]:
    """Process 0's numbers (Python floats, bit for bit), on every process: every process's
    History is then the same, wall-clock seconds included."""
    if not is_multiprocess() or not values:
        return values
    from jax.experimental import multihost_utils

    bits = np.asarray(values, np.float64).view(np.uint32)  # JAX without x64 has no float64
    out = np.asarray(multihost_utils.broadcast_one_to_all(bits), np.uint32)
    return [float(v) for v in out.view(np.float64)]
