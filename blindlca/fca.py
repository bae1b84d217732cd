"""Feature correspondence analysis (FCA): per-pixel anomaly score from local feature statistics.

For each image, a reference distribution of sorted patch values is built per channel
(median over non-overlapping tiles). Every pixel's centred patch is sorted per channel and
compared rank by rank with that reference; the absolute differences are mapped back to the
patch positions that hold those ranks, averaged over channels, smoothed, weighted by a
Gaussian window and overlap-added onto the image.

`fca` computes the patch ranks without sorting (see its docstring); `fca_reference` is the
plain sort-based implementation with the same result, kept for benchmarks and tests.

Precision: float64 inputs are computed in float64; every other dtype (float32, float16,
bfloat16, integers) is computed in float32. Outputs are returned in the input dtype when the
input is floating point, and in float32 otherwise. Outputs live on the input's device.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import torch
import torch.nn.functional as F

from blindlca.filters import gaussian_blur, gaussian_kernel2d

__all__ = [
    "border_width",
    "fca",
    "fca_reference",
    "postprocess",
    "reference_distribution",
    "residual_magnitude",
]


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _out_dtype(dtype: torch.dtype) -> torch.dtype:
    """Floating inputs keep their dtype; non-floating inputs give float32."""
    return dtype if dtype.is_floating_point else torch.float32


def _check_odd_positive(name: str, value: int) -> None:
    if value < 1 or value % 2 == 0:
        raise ValueError(f"{name} must be odd and positive, got {value}")


def _check_maps(x: torch.Tensor, patch_size: int, what: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{what} expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h < patch_size or w < patch_size:
        raise ValueError(f"{what} needs H and W >= patch_size = {patch_size}, got shape {tuple(x.shape)}")


def reference_distribution(x: torch.Tensor, *, patch_size: int = 7) -> torch.Tensor:
    """Per-channel median of the sorted values of non-overlapping tiles.

    The image is cut into ``patch_size`` x ``patch_size`` tiles starting at (0, 0); remainder
    rows/columns are dropped. Each tile's values are sorted ascending per channel and the
    element-wise median over tiles is taken (numpy semantics: the mean of the two middle
    values for an even number of tiles). ``patch_size`` need not be odd here.

    Args:
        x: (B, C, H, W) tensor, H and W >= patch_size.
        patch_size: tile side P.

    Returns:
        (B, C, P*P) tensor, each row sorted ascending.
    """
    if patch_size < 1:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    _check_maps(x, patch_size, "reference_distribution")
    p = patch_size
    b, c, h, w = x.shape
    nh, nw = h // p, w // p
    xw = x.to(_work_dtype(x.dtype))[:, :, : nh * p, : nw * p]
    tiles = xw.reshape(b, c, nh, p, nw, p).permute(0, 1, 2, 4, 3, 5).reshape(b, c, nh * nw, p * p)
    # Rank k of every tile, then the median over tiles of each rank. torch.median returns the
    # lower middle value, so take the middle pair with kthvalue (which orders like sort: NaN
    # last) and average it.
    ranked = torch.sort(tiles, dim=-1).values.transpose(2, 3).contiguous()  # (B, C, P*P, tiles)
    n = nh * nw
    lower = torch.kthvalue(ranked, (n - 1) // 2 + 1, dim=-1).values
    upper = lower if n % 2 else torch.kthvalue(ranked, n // 2 + 1, dim=-1).values
    ref = 0.5 * (lower + upper)
    return ref.to(_out_dtype(x.dtype))


def _check_fca_args(features: torch.Tensor, patch_size: int, k_s: int, channel_chunk: int) -> None:
    _check_odd_positive("patch_size", patch_size)
    _check_odd_positive("k_s", k_s)
    if k_s // 2 >= patch_size:
        raise ValueError(
            f"k_s // 2 must be < patch_size for reflect padding of the error grid, "
            f"got k_s = {k_s}, patch_size = {patch_size}"
        )
    if channel_chunk < 1:
        raise ValueError(f"channel_chunk must be positive, got {channel_chunk}")
    _check_maps(features, patch_size, "fca")


def _overlap_add(err: torch.Tensor, h: int, w: int, p: int, sigma_p: float, k_s: int, sigma_s: float):
    """(B, P*P, H*W) mean error grids -> (B, H, W): smooth each grid, weight, overlap-add, crop."""
    b, pp, n_pix = err.shape
    r = p // 2
    weight = gaussian_kernel2d(p, sigma_p, dtype=err.dtype, device=err.device)  # (P, P)
    grids = err.transpose(1, 2).reshape(b * n_pix, 1, p, p)
    grids = gaussian_blur(grids, k_s, sigma_s) * weight
    cols = grids.reshape(b, n_pix, pp).transpose(1, 2)  # (B, PP, H*W), fold layout
    acc = F.fold(cols, (h + 2 * r, w + 2 * r), p)
    return acc[:, 0, r : r + h, r : r + w]


# How the fast `fca` works. The rank of pixel q in a patch is the number of patch pixels that
# come before it in the stable sort order (smaller value, or equal value earlier in raster
# order). With first[d, q] = 1 where the pixel at displacement d from q comes before q, the
# rank of q in the patch that holds it at position (a, b) is the sum of first[d, q] over the
# P x P box of displacements (-a .. P-1-a, -b .. P-1-b) within the (2P-1) x (2P-1) grid of
# displacements. So: compare every padded pixel with its (2P-1)^2 neighbours once (half of the
# comparisons follow from the other half by symmetry), take all P*P box sums at once as
# separable window sums in 8-bit integers, gather r_c[rank] and subtract. The maps of a chunk
# are flattened row-major with a zero margin, so every displacement is a memory offset and
# every step is one strided tensor operation on the whole chunk: the same code on CPU and GPU.
# On the CPU the chunks are shared among worker threads (see `_error_grids`).

# Scratch bytes for the chunks in flight, by device type: enough work per operation to amortise
# its overhead (on a GPU: kernel launches), little enough to keep the peak memory well under
# half that of `fca_reference`.
_SCRATCH_BYTES = {"cpu": 32 << 20, "cuda": 96 << 20}


def _count_dtype(p: int) -> torch.dtype:
    """Smallest integer dtype that holds ranks 0 .. P*P - 1."""
    if p * p <= 1 << 8:
        return torch.uint8
    return torch.int16 if p * p <= 1 << 15 else torch.int32


def _scratch_layout(p: int, hp: int, wp: int, dtype: torch.dtype) -> tuple[dict, int]:
    """Scratch items of one map, {name: (byte offset, shape, dtype)}, and bytes per map.

    The rank phase (comparison planes, window sums) and the lookup phase (gather indices,
    errors) are never alive together, so both start at byte 0; the ranks connect them and come
    after both. The pair sums of the window sums reuse the bytes of the mirrored planes.
    """
    d, c, m, count = 2 * p - 1, p - 1, hp * wp, _count_dtype(p)
    planes = c * (wp + 1) + m  # one plane per displacement, with a margin in front
    layout = {}

    def place(items: list, start: int = 0) -> int:
        for name, shape, dt in items:
            layout[name] = (start, shape, dt)
            start += -(-math.prod(shape) * dt.itemsize // 8) * 8  # keeps every item 8-byte aligned
        return start

    shared = place([("first", (d * d, planes), torch.uint8)])
    rank_end = max(
        place([item], shared)
        for item in [
            ("mirrored", (c * d + c, planes), torch.uint8),
            ("pairs", (d, d - 1, m), count),
            ("column_pairs", (d - 1, p, m), count),
        ]
    )
    counts = [("counts", (d, d, m), count)] if count != torch.uint8 else []  # patches over 15 x 15
    rank_end = place([("rows", (d, p, m), count), *counts], rank_end)
    lookup_end = place([("index", (p * p * m,), torch.int64), ("err", (p, p, m), dtype)])
    return layout, place([("ranks", (p, p, m), count)], max(rank_end, lookup_end))


class _Scratch:
    """Named scratch tensors for chunks of up to ``rows`` maps, in one reused byte buffer.

    Item ``name`` takes bytes [offset, offset + size) of each map's share; the buffer stores it
    at [offset * rows, ...) for all maps back to back, so its view for the first n maps is
    contiguous.
    """

    def __init__(self, layout: dict, bytes_per_map: int, rows: int, device: torch.device):
        self.layout, self.rows = layout, rows
        self.buffer = torch.empty(rows * bytes_per_map, dtype=torch.uint8, device=device)

    def __call__(self, name: str, n: int) -> torch.Tensor:
        """(n, *shape) view of item ``name`` for the first n <= rows maps."""
        start, shape, dtype = self.layout[name]
        start, size = start * self.rows, math.prod(shape) * dtype.itemsize
        return self.buffer[start : start + n * size].view(dtype).view(n, *shape)


def _box_sums(t: torch.Tensor, dim: int, p: int, out: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Sums of ``p`` consecutive entries along ``dim`` (of size 2P - 1): out[i] = t[i] + ... + t[i+P-1].

    ``pairs`` (size 2P - 2 along ``dim``) is scratch: pairs[j] = t[j] + t[j+1], then
    out[i] = pairs[i] + pairs[i+2] + ... + pairs[i+P-3] + t[i+P-1]. Few, large operations.
    """
    if p == 1:
        return out.copy_(t)
    torch.add(t.narrow(dim, 0, 2 * p - 2), t.narrow(dim, 1, 2 * p - 2), out=pairs)
    torch.add(pairs.narrow(dim, 0, p), t.narrow(dim, p - 1, p), out=out)
    for k in range(2, p - 1, 2):
        out.add_(pairs.narrow(dim, k, p))
    return out


def _patch_errors(ext: torch.Tensor, ordered: torch.Tensor, ref: torch.Tensor, p: int, wp: int, scratch):
    """|value - r[rank]| of every padded pixel in each of the P*P patches that hold it.

    Args:
        ext: (N, M + 2E) maps after reflect padding (Hp x Wp, M = Hp * Wp), flattened row-major,
            with E = (P-1)(Wp+1) zeros on each side: the pixel at displacement (di, dj) from
            padded pixel q is at E + q + di * Wp + dj.
        ordered: (N, M + 2E) uint8, 1 where ``ext`` is not NaN.
        ref: (N, P*P) sorted reference values.
        scratch: `_Scratch` allocated for at least N maps.

    Returns:
        (N, P, P, M) view into the scratch: [n, i, j, q] is the error of padded pixel q in the
        patch that holds q at patch position (P-1-i, P-1-j) (garbage where there is no such patch).
    """
    n, size = ext.shape
    c, d = p - 1, 2 * p - 1
    e = c * (wp + 1)
    m = size - 2 * e

    def neighbours(t: torch.Tensor) -> torch.Tensor:
        """view[:, i, j, q]: the entry at displacement (i - c, j - c) from padded pixel q."""
        return t.as_strided((n, d, d, m), (t.stride(0), wp, 1, 1), t.storage_offset())

    planes = scratch("first", n)  # (N, D*D, E + M), displacement planes in raster order
    first = planes[:, :, e:].unflatten(1, (d, d))
    # Displacements from (0, 0) on in raster order: the neighbour comes first iff it is strictly
    # smaller (NaN compares False, as it sorts last). The centre itself gets 0.
    centre = ext[:, None, None, e : e + m]
    torch.lt(neighbours(ext)[:, c:], centre, out=first[:, c:].view(torch.bool))
    # Displacements before (0, 0): the neighbour q' = q + d comes first unless q comes first from
    # q' (plane -d at q'), and unless it is NaN. Plane -d is read from a mirrored copy of the
    # planes; zeroed margins keep every entry 0 or 1, hence every rank in range.
    planes[:, :, :e].zero_()
    mirror = torch.arange(d * d - 1, d * d - 1 - (c * d + c), -1, device=ext.device)
    mirrored = torch.index_select(planes, 1, mirror, out=scratch("mirrored", n))
    s0, s1 = mirrored.stride(0), mirrored.stride(1)
    minus_d = mirrored.as_strided((n, c, d, m), (s0, d * s1 + wp, s1 + 1, 1))  # rows above
    torch.sub(neighbours(ordered)[:, :c], minus_d, out=first[:, :c])
    offset = mirrored.storage_offset() + c * d * s1 + c * wp
    minus_d = mirrored.as_strided((n, c, m), (s0, s1 + 1, 1), offset)  # left, same row
    torch.sub(neighbours(ordered)[:, c, :c], minus_d, out=first[:, c, :c])
    counts = scratch("counts", n).copy_(first) if "counts" in scratch.layout else first
    # Box sums, along displacement columns, then rows. Box (i, j) starts at displacement
    # (i - c, j - c): the patch that holds q at position (P-1-i, P-1-j).
    rows = _box_sums(counts, 2, p, scratch("rows", n), scratch("pairs", n))
    ranks = _box_sums(rows, 1, p, scratch("ranks", n), scratch("column_pairs", n))
    index = scratch("index", n).copy_(ranks.view(n, -1))
    err = torch.gather(ref, 1, index, out=scratch("err", n).view(n, -1)).view(n, p, p, m)
    return err.sub_(centre).abs_()


def _single_threaded_workers(fn, shares: list) -> list:
    """[fn(share) for share in shares], each in its own thread running single-threaded torch ops.

    torch operations release the GIL, so the threads run in parallel. torch.set_num_threads in a
    thread only limits that thread's operations (OpenMP keeps the setting per thread), but torch
    also stores it process-wide, so it is restored afterwards.
    """
    threads = torch.get_num_threads()

    def work(share):
        torch.set_num_threads(1)
        return fn(share)

    try:
        with ThreadPoolExecutor(len(shares)) as pool:
            return list(pool.map(work, shares))
    finally:
        torch.set_num_threads(threads)


def _chunks_error_sum(chunks: list[slice], ext, ordered, ref, nb: int, p: int, wp: int, scratch: tuple):
    """Sum of `_patch_errors` over the channel ``chunks`` of a block of ``nb`` images: (nb, P, P, M).

    ``ext``, ``ordered``, ``ref``: the block's maps, image-major (see `_patch_errors`);
    ``scratch``: (layout, bytes per map, maps per chunk) for a `_Scratch` of this call's own.
    """
    m = ext.shape[1] - 2 * (p - 1) * (wp + 1)
    buffers = _Scratch(*scratch, ext.device)
    total, chunk_sum = ext.new_zeros(nb, p, p, m), ext.new_empty(nb, p, p, m)
    for ch in chunks:
        # The chunk's maps are contiguous rows: a block holds several images only when one
        # chunk takes all their channels.
        maps = slice(nb * ch.start, nb * ch.stop)
        err = _patch_errors(ext[maps], ordered[maps], ref[maps], p, wp, buffers)
        total += torch.sum(err.view(nb, ch.stop - ch.start, p, p, m), 1, out=chunk_sum)
    return total


def _error_grids(x: torch.Tensor, p: int, channel_chunk: int) -> torch.Tensor:
    """Channel sums of the P x P error grids of every patch: (B, C, H, W) -> (B, P*P, H*W).

    Images are processed in blocks (one image, or a few when all their channels fit in one
    chunk), channels in chunks that fit the scratch budget.
    """
    b, c, h, w = x.shape
    r, pp = p // 2, p * p
    hp, wp = h + 2 * r, w + 2 * r
    m, e = hp * wp, (p - 1) * (wp + 1)
    # On the CPU, torch.get_num_threads() worker threads take every k-th chunk each and run
    # single-threaded operations: many short operations that each synchronise their threads are
    # slow on a busy machine (threads spin-waiting for one that is descheduled).
    workers = torch.get_num_threads() if x.device.type == "cpu" else 1
    layout, bytes_per_map = _scratch_layout(p, hp, wp, x.dtype)
    rows = max(1, _SCRATCH_BYTES.get(x.device.type, _SCRATCH_BYTES["cpu"]) // workers // bytes_per_map)
    n_ch = max(1, min(c, channel_chunk, rows))
    n_img = max(1, min(b, rows // c)) if n_ch == c else 1
    chunks = [slice(j, min(j + n_ch, c)) for j in range(0, c, n_ch)]
    workers = min(workers, len(chunks))
    shares = [chunks[k::workers] for k in range(workers)]

    out = x.new_empty(b, pp, h * w)
    for i0 in range(0, b, n_img):
        block = x[i0 : i0 + n_img]
        nb = block.shape[0]
        ref = reference_distribution(block, patch_size=p).view(nb * c, pp)
        ext = F.pad(F.pad(block, (r, r, r, r), mode="reflect").view(nb * c, m), (e, e))
        ordered = ext.isnan().logical_not_().view(torch.uint8)
        scratch = (layout, bytes_per_map, nb * n_ch)
        work = partial(
            _chunks_error_sum, ext=ext, ordered=ordered, ref=ref, nb=nb, p=p, wp=wp, scratch=scratch
        )
        if len(shares) == 1:
            total = work(shares[0])
        else:
            totals = _single_threaded_workers(work, shares)
            total = totals[0]
            for other in totals[1:]:  # in a fixed order: the same result at every run
                total += other
        # The patch with top-left padded pixel s holds pixel s + a * Wp + b at patch position (a, b).
        total = total.flip(1, 2)
        st = total.stride()
        t = (h - 1) * wp + w
        grids = total.as_strided((nb, p, p, t), (st[0], st[1] + wp, st[2] + 1, 1))
        # Keep the patches of real pixels: top-left flat index s = i * Wp + j with j < W.
        grids = F.pad(grids.reshape(nb, pp, t), (0, h * wp - t)).view(nb, pp, h, wp)[..., :w]
        out[i0 : i0 + nb] = grids.reshape(nb, pp, h * w)
    return out


def fca(
    features: torch.Tensor,
    *,
    patch_size: int = 7,
    sigma_p: float = 3.0,
    k_s: int = 5,
    sigma_s: float = 1.0,
    channel_chunk: int = 64,
) -> torch.Tensor:
    """Feature correspondence analysis score, before post-processing.

    For every pixel the ``patch_size`` x ``patch_size`` patch centred on it (reflect padding
    P//2) is sorted per channel (stable sort: ties keep row-major patch order); the value of
    rank k is compared with the reference ``r_c[k]``; |difference| is written back to the
    patch position holding rank k and averaged over channels. Each P x P error grid is
    smoothed on its own (k_s x k_s Gaussian, reflect padding at the grid edge), multiplied by
    a normalised P x P Gaussian of ``sigma_p`` and overlap-added onto the pixels it covers;
    contributions falling outside the image are discarded.

    Nothing is sorted: the rank of a pixel within a patch is the number of patch pixels that
    come before it in the stable order. Comparing each padded pixel with its (2P-1)^2
    neighbours once gives, for every patch containing it, that count as a P x P box sum over
    the displacements, computed for all boxes at once as separable window sums in 8-bit
    integers; the error is then ``|value - r_c[rank]|`` (one gather). Same result as the plain
    sort-based `fca_reference` up to float summation order, NaN and infinities included. An
    input that requires grad (with grad enabled) goes through `fca_reference`.

    Args:
        features: (B, C, H, W) tensor, H and W >= patch_size.
        patch_size: odd patch side P.
        sigma_p: sigma of the P x P overlap-add weight (normalised to sum 1).
        k_s: odd side of the error-grid smoothing kernel, k_s // 2 < patch_size.
        sigma_s: sigma of the error-grid smoothing kernel.
        channel_chunk: at most this many channels are processed at once (bounds memory; does not
            change the result).

    Returns:
        (B, H, W) score on the input's device (dtype: see module docstring).
    """
    _check_fca_args(features, patch_size, k_s, channel_chunk)
    if features.requires_grad and torch.is_grad_enabled():
        # The fast path writes into reused scratch buffers, which autograd cannot follow.
        kwargs = dict(sigma_p=sigma_p, k_s=k_s, sigma_s=sigma_s, channel_chunk=channel_chunk)
        return fca_reference(features, patch_size=patch_size, **kwargs)
    b, c, h, w = features.shape
    x = features.to(_work_dtype(features.dtype))
    err = _error_grids(x, patch_size, channel_chunk) / c
    return _overlap_add(err, h, w, patch_size, sigma_p, k_s, sigma_s).to(_out_dtype(features.dtype))


def fca_reference(
    features: torch.Tensor,
    *,
    patch_size: int = 7,
    sigma_p: float = 3.0,
    k_s: int = 5,
    sigma_s: float = 1.0,
    channel_chunk: int = 64,
) -> torch.Tensor:
    """Plain sort-based FCA: same signature and result as `fca`, kept for benchmarks and tests.

    Per image and channel chunk: reflect pad, unfold, stable sort of every patch,
    |sorted - reference|, scattered back to the patch positions, summed over channels. Several
    times slower than `fca` and uses several times its memory (`python -m blindlca.benchmark fca`).
    """
    _check_fca_args(features, patch_size, k_s, channel_chunk)
    p, r, pp = patch_size, patch_size // 2, patch_size * patch_size
    b, c, h, w = features.shape
    n_pix = h * w
    dtype = _work_dtype(features.dtype)
    x = features.to(dtype)
    ref = reference_distribution(x, patch_size=p)  # (B, C, PP), already in `dtype`
    weight = gaussian_kernel2d(p, sigma_p, dtype=dtype, device=x.device)  # (P, P)

    out = []
    for i in range(b):
        err = torch.zeros(pp, n_pix, dtype=dtype, device=x.device)  # channel-sum of error grids
        for c0 in range(0, c, channel_chunk):
            c1 = min(c0 + channel_chunk, c)
            xp = F.pad(x[i : i + 1, c0:c1], (r, r, r, r), mode="reflect")
            cols = F.unfold(xp, p).view(c1 - c0, pp, n_pix)  # patch values, row-major in the patch
            vals, idx = torch.sort(cols, dim=1, stable=True)
            del cols
            d = (vals - ref[i, c0:c1, :, None]).abs_()
            del vals
            # idx is a permutation per (channel, pixel): each patch position is written once.
            err += torch.empty_like(d).scatter_(1, idx, d).sum(dim=0)
            del d, idx
        err /= c
        grids = err.t().reshape(n_pix, 1, p, p)
        grids = gaussian_blur(grids, k_s, sigma_s) * weight
        cols = grids.reshape(n_pix, pp).t().unsqueeze(0)  # (1, PP, H*W), fold layout
        acc = F.fold(cols, (h + 2 * r, w + 2 * r), p)
        out.append(acc[0, 0, r : r + h, r : r + w])
    return torch.stack(out).to(_out_dtype(features.dtype))


def border_width(size: int, *, border: int = 5, reference: int = 64) -> int:
    """Border width for an axis of ``size`` pixels: ``border * size / reference``, rounded half up.

    Exact integer arithmetic (no float rounding): 5 at 64, 3 at 32, 10 at 128.
    """
    if size < 0 or border < 0 or reference < 1:
        raise ValueError(
            f"need size >= 0, border >= 0, reference >= 1; got size={size}, border={border}, "
            f"reference={reference}"
        )
    return (2 * border * size + reference) // (2 * reference)


def postprocess(
    alpha: torch.Tensor,
    *,
    blur_kernel: int = 5,
    blur_sigma: float = 1.0,
    border: int = 5,
    border_reference: int = 64,
) -> torch.Tensor:
    """Gaussian blur (reflect padding), then zero a border scaled per axis.

    The border is ``border_width(H)`` rows at top and bottom and ``border_width(W)`` columns
    at left and right.

    Args:
        alpha: (B, H, W) score map, H and W > blur_kernel // 2.

    Returns:
        (B, H, W) on the input's device (dtype: see module docstring).
    """
    if alpha.ndim != 3:
        raise ValueError(f"postprocess expects a (B, H, W) tensor, got shape {tuple(alpha.shape)}")
    _check_odd_positive("blur_kernel", blur_kernel)
    h, w = alpha.shape[-2:]
    if min(h, w) <= blur_kernel // 2:
        raise ValueError(
            f"postprocess needs H and W > blur_kernel // 2 = {blur_kernel // 2}, "
            f"got shape {tuple(alpha.shape)}"
        )
    y = gaussian_blur(alpha.to(_work_dtype(alpha.dtype))[:, None], blur_kernel, blur_sigma)[:, 0]
    bh = border_width(h, border=border, reference=border_reference)
    bw = border_width(w, border=border, reference=border_reference)
    y[:, :bh, :] = 0
    y[:, h - bh :, :] = 0
    y[:, :, :bw] = 0
    y[:, :, w - bw :] = 0
    return y.to(_out_dtype(alpha.dtype))


def residual_magnitude(residuals: torch.Tensor) -> torch.Tensor:
    """just_vae score: mean over channels of |R|.

    Args:
        residuals: (B, C, H, W) tensor.

    Returns:
        (B, H, W) on the input's device (dtype: see module docstring).
    """
    if residuals.ndim != 4:
        raise ValueError(
            f"residual_magnitude expects a (B, C, H, W) tensor, got shape {tuple(residuals.shape)}"
        )
    return residuals.to(_work_dtype(residuals.dtype)).abs().mean(dim=1).to(_out_dtype(residuals.dtype))
