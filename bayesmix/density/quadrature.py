"""Adaptive Gauss-Hermite quadrature over the school random effects of two-level mixtures.

The objective of :func:`bayesmix.density.hermite.quadrature_loglik`
is evaluated on equal-shaped chunks of whole schools: an evaluation touches
observations x nodes x classes values, and chunks of about
:data:`CHUNK_CELLS` of them stay in the processor's cache, where one pass
over all schools would be bound by memory traffic. Padding
rows of a chunk belong to a padding school of weight 0, so one compiled
function serves every chunk.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
from pytensor.compile import Function

from bayesmix.data.design import Design
from bayesmix.density.compiled import quadrature_functions

DEFAULT_POINTS = {1: 15, 2: 7, 3: 5}
"""Quadrature points per dimension by number of integration dimensions."""

SETTLED = 1e-6
"""Re-adaptation has settled when it would move no school's nodes (centre and
scale, standardised residual units) by more, or changes the log-likelihood by less."""

SETTLE_STEPS = 40
"""Most moment updates of :meth:`AdaptiveQuadrature.adapt` with ``settle``."""

MIN_STEP = 1.0 / 64.0
"""Shortest step of a school's re-adaptation towards its new moments."""

MAX_STEP = 4.0
"""Longest step (beyond the new moments) while re-adaptation settles."""

CHUNK_CELLS = 120_000
"""Target observations x nodes x classes per chunk."""

THREADS = min(2, os.cpu_count() or 1)
"""Chunks evaluated at once with the JAX backend.

XLA does not keep both cores of a 2-core machine busy with one chunk; two
chunks at once do.
"""


@cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="bayesmix-quadrature")


@dataclass(frozen=True, eq=False)
class NodeState:
    """Where an :class:`AdaptiveQuadrature`'s nodes are: centres, scales and step sizes
    (chunk, school, ...), and the parameters they were adapted at."""

    centre: np.ndarray
    scale: np.ndarray
    step_size: np.ndarray
    adapted_at: np.ndarray | None


@dataclass(frozen=True)
class Chunk:
    """A run of whole schools, padded to the common chunk shape.

    Attributes
    ----------
    clusters : slice
        The schools (indices into the design's clusters).
    rows : slice
        Their observations (rows of the design).
    args : tuple of ndarray
        ``(y, F, R, Z, V, cluster, weight, W)`` padded to the chunk shape;
        ``cluster`` is local (0..J_chunk-1) and padding rows sit in the last,
        weight-0 school; ``W`` holds the schools' level-2 class design.
    """

    clusters: slice
    rows: slice
    args: tuple[np.ndarray, ...]

    @property
    def n_clusters(self) -> int:
        """Real (unpadded) schools in the chunk."""
        return self.clusters.stop - self.clusters.start

    @property
    def n_rows(self) -> int:
        """Real (unpadded) observations in the chunk."""
        return self.rows.stop - self.rows.start


def plan_chunks(bounds: np.ndarray, cells_per_row: int, target: int = CHUNK_CELLS) -> list[slice]:
    """Split the schools (rows ``bounds[j]:bounds[j+1]``) into contiguous runs.

    Each run has at most ``target / cells_per_row`` rows, or one school when
    a school alone is larger.
    """
    sizes = np.diff(bounds)
    limit = max(int(target // max(cells_per_row, 1)), int(sizes.max(initial=1)))
    runs: list[slice] = []
    start, rows = 0, 0
    for j, size in enumerate(sizes):
        if rows + size > limit and j > start:
            runs.append(slice(start, j))
            start, rows = j, 0
        rows += int(size)
    runs.append(slice(start, len(sizes)))
    return runs


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, *a.shape[1:]), dtype=a.dtype)
    out[: len(a)] = a
    return out


def make_chunks(design: Design, cells_per_row: int, target: int = CHUNK_CELLS) -> list[Chunk]:
    """Equal-shaped chunks of whole schools for the quadrature objective."""
    bounds = np.asarray(design.bounds)
    runs = plan_chunks(bounds, cells_per_row, target)
    n_pad = max(int(bounds[r.stop] - bounds[r.start]) for r in runs)
    # one padding school more than the largest run, so every chunk has one
    j_pad = max(r.stop - r.start for r in runs) + 1
    y, F, R, Z, V, _ = design.likelihood_args()
    cluster = np.asarray(design.cluster, dtype=np.int64)
    row_weight, school_weight = school_weights(design)
    chunks = []
    for r in runs:
        rows = slice(int(bounds[r.start]), int(bounds[r.stop]))
        local = np.full(n_pad, j_pad - 1, dtype=np.int64)
        local[: rows.stop - rows.start] = cluster[rows] - r.start
        weight = np.ascontiguousarray(_pad(school_weight[r], j_pad))
        args = tuple(np.ascontiguousarray(_pad(a[rows], n_pad)) for a in (y, F, R, Z, V))
        W = np.ascontiguousarray(_pad(design.W[r], j_pad))
        rw = np.ascontiguousarray(_pad(row_weight[rows], n_pad))
        chunks.append(Chunk(r, rows, (*args, local, weight, W, rw)))
    return chunks


def school_weights(design: Design) -> tuple[np.ndarray, np.ndarray]:
    """The students' and the schools' sampling weights (ones for an unweighted design)."""
    weights = design.weight_args()
    if weights is None:
        return np.ones(design.n_obs), np.ones(len(design.cluster_ids))
    row, school = weights
    return row, np.ones(len(design.cluster_ids)) if school is None else school


class AdaptiveQuadrature:
    """Objective of a two-level mixture with adaptive quadrature nodes.

    Holds the adaptation (posterior mean and Cholesky covariance of each
    school's standardised random effects, per chunk); :meth:`fun` evaluates
    the objective with the nodes fixed, :meth:`adapt` moves them to the
    posterior at ``theta``.

    Parameters
    ----------
    design : Design
    points : int
        Gauss-Hermite points per dimension.
    backend : {"jax", "numba"}
    chunk_cells : int
        Target observations x nodes x classes per chunk.
    threads : int
        Chunks evaluated at once (JAX backend only); results do not depend on it.
    """

    def __init__(
        self,
        design: Design,
        points: int,
        backend: str = "jax",
        chunk_cells: int = CHUNK_CELLS,
        threads: int = THREADS,
    ) -> None:
        self.points = points
        self.threads = threads
        self.backend = backend
        self.design = design
        self.n = design.n_obs
        self.J = len(design.cluster_ids)
        self.d = design.layout.n_random
        self.K = design.spec.classes
        self.L = design.spec.between_classes
        # with level-2 classes every school has one rule per class (see likelihood)
        self.rules = (self.L,) if self.L > 1 else ()
        cells = points**self.d * self.K * self.L
        self.chunks = make_chunks(design, cells, chunk_cells)
        self.school_weights = school_weights(design)[1]
        """The schools' sampling weights (ones without weights), by which their terms count."""
        self.j_pad = len(self.chunks[0].args[6])
        # real (not padding) schools of each chunk
        self.real = (
            np.arange(self.j_pad)[None, :] < np.array([c.n_clusters for c in self.chunks])[:, None]
        )
        self.reset()
        self.f, self.post, self.moments = quadrature_functions(
            design.layout,
            points,
            (*self.chunks[0].args, self.centre[0], self.scale[0]),
            backend,
        )

    def with_points(self, points: int) -> AdaptiveQuadrature:
        """The same objective with another rule (``points`` per dimension)."""
        return AdaptiveQuadrature(self.design, points, self.backend, threads=self.threads)

    def reset(self) -> None:
        """Non-adaptive nodes: prior mean 0 and covariance I."""
        self.centre = self._prior_centre()
        self.scale = self._prior_scale()
        self.fresh = True
        self.step_size = np.ones((len(self.chunks), self.j_pad))
        self.adapted_at: np.ndarray | None = None
        self.moved = np.inf
        self.loglik_before = np.nan
        self._forget_moves()

    def snapshot(self) -> NodeState:
        """The nodes as they are, to :meth:`restore` later (e.g. at a start's solution)."""
        return NodeState(
            centre=self.centre.copy(),
            scale=self.scale.copy(),
            step_size=self.step_size.copy(),
            adapted_at=None if self.adapted_at is None else self.adapted_at.copy(),
        )

    def restore(self, state: NodeState) -> None:
        """Put the nodes back as :meth:`snapshot` found them."""
        self.centre = state.centre.copy()
        self.scale = state.scale.copy()
        self.step_size = state.step_size.copy()
        self.adapted_at = None if state.adapted_at is None else state.adapted_at.copy()
        self.fresh = False
        self._forget_moves()

    def _forget_moves(self) -> None:
        """Forget the schools' last proposed moves: after the parameters moved, the
        moment map is another, and a ratio of moves across the two means nothing."""
        self.last_move = np.zeros((len(self.chunks), self.j_pad, 0))

    def _prior_centre(self) -> np.ndarray:
        """Centres (chunk, school, *rules, d) of the prior: 0."""
        return np.zeros((len(self.chunks), self.j_pad, *self.rules, self.d))

    def _prior_scale(self) -> np.ndarray:
        """Scales (chunk, school, *rules, d, d) of the prior: I."""
        shape = (len(self.chunks), self.j_pad, *self.rules, self.d, self.d)
        return np.broadcast_to(np.eye(self.d), shape).copy()

    def _calls(self, f, theta: np.ndarray) -> list[list[np.ndarray]]:
        theta = np.ascontiguousarray(theta, dtype=float)

        def run(ks: range) -> list[list[np.ndarray]]:
            # dispatch every chunk before reading any result, so that asynchronous
            # backends (JAX) overlap the chunks' work
            pending = [f(theta, *self.chunks[k].args, self.centre[k], self.scale[k]) for k in ks]
            return [[np.asarray(o) for o in out] for out in pending]

        # a pytensor Function keeps its inputs in shared storage cells: one call at a time
        threads = 1 if isinstance(f, Function) else self.threads
        if threads < 2 or len(self.chunks) < 2:
            return run(range(len(self.chunks)))
        # JAX releases the interpreter lock while XLA runs, so worker threads evaluate
        # interleaved chunks at once; results come back in chunk order, and the sums
        # over chunks are the same as from one thread
        n = len(self.chunks)
        parts = [_pool(threads).submit(run, range(i, n, threads)) for i in range(threads)]
        done = [p.result() for p in parts]
        return [done[k % threads][k // threads] for k in range(n)]

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log-likelihood and its gradient with the nodes held fixed."""
        outs = self._calls(self.f, theta)
        return float(sum(o[0] for o in outs)), np.sum([o[1] for o in outs], axis=0)

    def evaluate(self, theta: np.ndarray) -> list[np.ndarray]:
        """Log-likelihood and posterior quantities at ``theta`` under the current nodes.

        Returns ``[loglik, means (J, d), covariances (J, d, d), class probs
        (n, K), per-cluster log-likelihoods (J,), level-2 class probs (J, L)]``:
        moments of the standardised school residuals, P(C_ij = c | y_j) and
        P(D_j = d | y_j).
        """
        outs = self._calls(self.post, theta)
        parts = []
        for o, c in zip(outs, self.chunks, strict=True):
            m, rows = c.n_clusters, c.n_rows
            parts.append((o[1][:m], o[2][:m], o[3][:rows], o[4][:m], o[5][:m]))
        return [
            np.asarray(sum(float(o[0]) for o in outs)),
            *(np.concatenate([p[i] for p in parts]) for i in range(5)),
        ]

    def fun(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative mean log-likelihood and its gradient, as scipy minimises."""
        ll, grad = self.value_and_grad(theta)
        if not np.isfinite(ll):
            return np.inf, np.zeros_like(theta)
        return -ll / self.n, -grad / self.n

    def fun_following(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """:meth:`fun` after one adaptation step at ``theta`` (nodes follow the parameters).

        Far from convergence this objective is far closer to the adaptive
        quadrature at ``theta`` than one with the nodes held where an
        earlier theta put them; its gradient treats the nodes as fixed.
        """
        self._step(theta, 0.0)
        return self.fun(theta)

    def _step(
        self, theta: np.ndarray, floor: float, track: bool = False, most: float = 1.0
    ) -> bool:
        """Move every school's nodes to its posterior moments under the current nodes.

        All chunks at once (they share one padded shape); padding schools keep
        the prior's nodes. With ``track``, each school's step is set from its
        last moves (see :meth:`_step_sizes`), at most ``most`` times the way to
        its new moments.
        """
        if self.d == 0:
            return True
        outs = self._calls(self.moments, theta)
        if not all(np.isfinite(o[0]) for o in outs):
            return False
        # the log-likelihood under the nodes this step moves away from
        self.loglik_before = float(sum(o[0] for o in outs))
        mean = np.stack([o[1] for o in outs])
        cov = np.stack([o[2] for o in outs])
        if not np.all(np.isfinite(cov[self.real])):
            return False
        prev_sd = np.sqrt(np.einsum("...ab,...ab->...a", self.scale, self.scale))
        # from a coarse grid the weights may sit on one node and understate the
        # posterior spread; a floor of `floor` x the previous SD lets the grid zoom
        # in geometrically instead of collapsing
        bump = (floor * prev_sd) ** 2 + 1e-9
        cov = cov + np.einsum("...a,ab->...ab", bump, np.eye(self.d))
        mean[~self.real] = 0.0
        cov[~self.real] = np.eye(self.d)
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            return False
        if track:
            # (chunk, school, 1...) step sizes broadcast over level-2 rules and dimensions
            a = self._step_sizes(mean, chol, most)
            a_scale = a.reshape(*a.shape, *([1] * (chol.ndim - 2)))
            # a step beyond the new moments must leave the scale a Cholesky factor
            diag = np.diagonal(self.scale + a_scale * (chol - self.scale), axis1=-2, axis2=-1)
            beyond = (a > 1.0) & ~(diag > 0).reshape(*a.shape, -1).all(axis=-1)
            a = np.where(beyond, 1.0, a)
            self.step_size[beyond] = 1.0
            a_scale = a.reshape(*a.shape, *([1] * (chol.ndim - 2)))
            mean = self.centre + a_scale[..., 0] * (mean - self.centre)
            chol = self.scale + a_scale * (chol - self.scale)
        self.centre, self.scale = mean, chol
        return True

    def _step_sizes(self, mean: np.ndarray, chol: np.ndarray, most: float) -> np.ndarray:
        """Step (chunk, school) of each school towards its new moments.

        Moment updates converge fast wherever a school's posterior is unimodal,
        and those schools take full steps. A school whose students leave their
        classes in doubt may have a posterior with two modes, on which full
        updates cycle around the fixed point (or wander near it); the
        log-likelihood then changed with every re-adaptation (by 0.1 on 20 000
        Fig 3 schools, where three cycled), so that no solution had a vanishing
        gradient. From two successive proposed moves ``r`` of a school, the
        ratio ``rho = <r_t, r_t-1> / |r_t-1|^2`` estimates how the update map
        stretches that direction, and the step ``a / (1 - rho)`` (at most
        ``most``, at least :data:`MIN_STEP`) goes straight to the fixed point of
        a linear map: the same fixed point, a function of the parameters alone,
        reached by a converging iteration. Steps beyond 1 (``most`` up to
        :data:`MAX_STEP` while settling) speed up schools whose updates converge
        slowly in one direction.
        """
        lead = mean.shape[:2]
        move = np.concatenate(
            [(mean - self.centre).reshape(*lead, -1), (chol - self.scale).reshape(*lead, -1)],
            axis=-1,
        )
        step = self.step_size
        last = self.last_move
        if last.shape[-1]:
            norm = np.einsum("cja,cja->cj", last, last)
            rho = np.einsum("cja,cja->cj", move, last) / np.where(norm > 0, norm, 1.0)
            unsettled = (np.abs(move).max(axis=-1) > SETTLED) & (norm > 0) & (rho < 1.0)
            step[unsettled] = np.clip(step[unsettled] / (1.0 - rho[unsettled]), MIN_STEP, most)
        self.last_move = move
        self.moved = float(np.abs(move).max(initial=0.0))
        return np.minimum(step, most)

    def adapt(self, theta: np.ndarray, iterations: int = 2, settle: bool = False) -> float:
        """Move the nodes to the posterior at theta; return the log-likelihood there.

        From the prior (after :meth:`reset`) the first steps zoom in with a
        floor on the spread; the last ``iterations`` steps are plain moment
        updates, so the final nodes sit at the quadrature posterior. With
        ``settle`` the updates go on (up to :data:`SETTLE_STEPS`) until no
        school's nodes would move by more than :data:`SETTLED`, or an update
        changes the log-likelihood by less than that: the nodes, and the
        log-likelihood, are then those of the fixed point at ``theta``, whatever
        the nodes were before.
        """
        theta = np.asarray(theta, dtype=float)
        if self.fresh:
            for _ in range(8):
                if not self._step(theta, 0.5):
                    self.reset()
                    break
            self.fresh = False
        if self.adapted_at is None or not np.array_equal(theta, self.adapted_at):
            self._forget_moves()
        self.adapted_at = theta.copy()
        previous = np.nan
        most = MAX_STEP if settle else 1.0
        for k in range(SETTLE_STEPS if settle else iterations):
            if not self._step(theta, 0.0, track=True, most=most):
                self.reset()
                break
            # the previous step changed the log-likelihood by this much
            change, previous = abs(self.loglik_before - previous), self.loglik_before
            if settle and k + 1 >= iterations and (self.moved <= SETTLED or change < SETTLED):
                break
        return self.value_and_grad(theta)[0]


def adapted_quadrature(
    design: Design,
    theta: np.ndarray,
    points: int | None = None,
    iterations: int = 4,
    backend: str = "jax",
) -> AdaptiveQuadrature:
    """A quadrature whose nodes sit at each school's posterior at ``theta``.

    ``points`` defaults to :data:`DEFAULT_POINTS` for the model's dimension.
    """
    if points is None:
        points = DEFAULT_POINTS.get(design.layout.n_random, 3)
    quad = AdaptiveQuadrature(design, points, backend)
    quad.adapt(np.asarray(theta, dtype=float), iterations=iterations)
    return quad
