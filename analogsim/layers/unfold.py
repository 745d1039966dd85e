r"""Digital periphery of convolutional layers: sliding windows (im2col / col2im) and pooling.

Maps are stored flattened in C order, ``(B, C·H·W)``; here they are viewed as
``(B, C, H, W)``. A :class:`Window` (kernel ``k_h × k_w``, stride ``s``, zero padding ``p``,
dilation ``d``) slides over a map; output position ``(r, c)`` reads the input pixels

.. math:: x[\,:,\ r s_h - p_h + i d_h,\ c s_w - p_w + j d_w\,], \qquad
          0 \le i < k_h,\ 0 \le j < k_w ,

and the output map has :math:`H_o = \lfloor (H + 2p_h - d_h (k_h - 1) - 1)/s_h \rfloor + 1`
rows (likewise :math:`W_o`). :func:`unfold` (im2col) lays every window out as one row of
``C·k_h·k_w`` entries, ordered ``(channel, i, j)``: the rows of all ``P = H_o W_o`` positions
of a batch form the ``(B·P, C·k_h·k_w)`` input of one big array read. :func:`fold` (col2im) is
its transpose: it adds every row's entries back onto the pixels they came from (overlapping
windows add up).

:class:`Pool2d` (max or average pooling) is a digital operation on a map. Max pooling keeps
its *switches* (the arg-max of every window) for the backward pass, which routes each output
error to the pixel that won; average pooling spreads it evenly over the window.

Nothing here charges a ledger: the layers (:mod:`analogsim.layers.conv`) charge the counts
that :func:`unfold_counts`, :func:`fold_counts` and :meth:`Pool2d.counts` give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["Window", "Pool2d", "POOLS", "unfold", "fold", "unfold_counts", "fold_counts",
           "pair"]

POOLS = ("max", "avg")


def pair(name: str, value: object, lo: int) -> tuple[int, int]:
    """An integer or a pair of integers, each ``>= lo``, as a pair (``3 → (3, 3)``)."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    ok = len(items) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 and v >= lo for v in items)
    if not ok:
        raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer >= {lo} or a "
                         f"pair of them")
    return int(items[0]), int(items[1])


@dataclass(frozen=True)
class Window:
    """A 2-D sliding window: kernel, stride, zero padding and dilation (all ``(h, w)``)."""

    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        for name, lo in (("kernel", 1), ("stride", 1), ("padding", 0), ("dilation", 1)):
            object.__setattr__(self, name, pair(name, getattr(self, name), lo))

    @property
    def span(self) -> tuple[int, int]:
        """Pixels one window covers along each axis: ``d (k - 1) + 1``."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        """``(H_o, W_o)`` on an ``h × w`` map; ValueError if the window does not fit."""
        (ph, pw), (sh, sw), (eh, ew) = self.padding, self.stride, self.span
        if h + 2 * ph < eh or w + 2 * pw < ew:
            raise ValueError(f"a {self.kernel[0]}x{self.kernel[1]} window (dilation "
                             f"{self.dilation[0]}x{self.dilation[1]}, padding "
                             f"{ph}x{pw}) does not fit the {h}x{w} map; allowed: a window "
                             "no larger than the padded map")
        return (h + 2 * ph - eh) // sh + 1, (w + 2 * pw - ew) // sw + 1

    def covers(self, h: int, w: int) -> bool:
        """Whether the window is the whole map (one position: im2col is a plain flatten)."""
        return self.kernel == (h, w) and self.padding == (0, 0) and self.dilation == (1, 1)


def _windows(xp: np.ndarray, win: Window, ho: int, wo: int) -> np.ndarray:
    """Read-only view ``(B, H_o, W_o, C, k_h, k_w)`` of the windows of a padded map."""
    sb, sc, sh, sw = xp.strides
    (kh, kw), (th, tw), (dh, dw) = win.kernel, win.stride, win.dilation
    return as_strided(xp, shape=(xp.shape[0], ho, wo, xp.shape[1], kh, kw),
                      strides=(sb, sh * th, sw * tw, sc, sh * dh, sw * dw), writeable=False)


def unfold(x: np.ndarray, win: Window) -> np.ndarray:
    """im2col: ``(B, C, H, W)`` → ``(B·H_o·W_o, C·k_h·k_w)``, rows ``(b, r, c)`` in C order.

    The dtype of ``x`` is kept (float64 for numerical checks). A window that covers the
    whole map returns a reshaped view (no copy).
    """
    b, c, h, w = x.shape
    if win.covers(h, w):
        return x.reshape(b, c * h * w)
    ho, wo = win.out_size(h, w)
    ph, pw = win.padding
    xp = x
    if ph or pw:
        xp = np.zeros((b, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
        xp[:, :, ph:ph + h, pw:pw + w] = x
    kh, kw = win.kernel
    return _windows(np.ascontiguousarray(xp), win, ho, wo).reshape(b * ho * wo, c * kh * kw)


def fold(cols: np.ndarray, win: Window, shape: tuple[int, int, int, int]) -> np.ndarray:
    """col2im, the transpose of :func:`unfold`: ``(B·P, C·k_h·k_w)`` → ``(B, C, H, W)``.

    Every entry is added onto the input pixel it was read from; padding pixels are dropped.
    """
    b, c, h, w = shape
    if win.covers(h, w):
        return cols.reshape(shape)
    ho, wo = win.out_size(h, w)
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = win.kernel, win.stride, win.dilation, win.padding
    g = cols.reshape(b, ho, wo, c, kh, kw).transpose(0, 3, 1, 2, 4, 5)
    xp = np.zeros((b, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        r0 = i * dh
        for j in range(kw):
            c0 = j * dw
            xp[:, :, r0:r0 + sh * (ho - 1) + 1:sh, c0:c0 + sw * (wo - 1) + 1:sw] += g[..., i, j]
    return xp[:, :, ph:ph + h, pw:pw + w]


def unfold_counts(batch: int, positions: int, width: int, covers: bool, word: int
                  ) -> dict[str, int]:
    """Ledger counts of one im2col: every window entry gathered (read) and written once.

    A window covering the whole map is a plain flatten of a map already in memory: free.
    """
    if covers:
        return {}
    return {"mem_bytes": 2 * batch * positions * width * word}


def fold_counts(batch: int, positions: int, width: int, n_pixels: int, covers: bool,
                word: int) -> dict[str, int]:
    """Ledger counts of one col2im: one addition per window entry, the entries read and the
    ``n_pixels`` per sample of the input map written."""
    if covers:
        return {}
    n = batch * positions * width
    return {"digital_adds": n, "mem_bytes": (n + batch * n_pixels) * word}


@dataclass(frozen=True)
class Pool2d:
    """Max or average pooling over ``size`` windows moved by ``stride`` (default: ``size``).

    No padding: a window never reads outside the map (trailing rows and columns that no
    window reaches are dropped, as PyTorch's ``MaxPool2d`` does).
    """

    kind: str
    size: tuple[int, int]
    stride: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.kind not in POOLS:
            raise ValueError(f"pool kind = {self.kind!r} is invalid; allowed: "
                             + ", ".join(map(repr, POOLS)))
        object.__setattr__(self, "size", pair("pool size", self.size, 1))
        stride = self.size if self.stride is None else self.stride
        object.__setattr__(self, "stride", pair("pool stride", stride, 1))

    @property
    def window(self) -> Window:
        return Window(self.size, self.stride)

    def out_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """``(C, H_o, W_o)`` of the pooled map of a ``(C, H, W)`` map."""
        c, h, w = shape
        return (c, *self.window.out_size(h, w))

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Pool ``x`` ``(B, C, H, W)``: ``(y, switches)``, ``y`` of shape ``(B, C, H_o, W_o)``.

        ``switches`` (max pooling only) is the flat index ``i·k_w + j`` of each window's
        maximum (the first one on ties), uint8/uint16, for :meth:`backward`.
        """
        _, c, h, w = x.shape
        _, ho, wo = self.out_shape((c, h, w))
        kh, kw = self.size
        win = _windows(np.ascontiguousarray(x), self.window, ho, wo)  # (B, Ho, Wo, C, kh, kw)
        flat = win.transpose(0, 3, 1, 2, 4, 5).reshape(*x.shape[:2], ho, wo, kh * kw)
        if self.kind == "avg":
            return flat.mean(axis=-1, dtype=x.dtype), None
        idx = flat.argmax(axis=-1)
        y = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
        return y, idx.astype(np.uint8 if kh * kw <= 256 else np.uint16)

    def backward(self, g: np.ndarray, switches: np.ndarray | None,
                 shape: tuple[int, int, int, int]) -> np.ndarray:
        """Transpose of the pooling's Jacobian: ``g`` ``(B, C, H_o, W_o)`` → ``(B, C, H, W)``.

        Max: each error goes to the pixel its window's switch names; average: each pixel of
        the window gets ``g / (k_h k_w)``. Overlapping windows add up.
        """
        kh, kw = self.size
        sh, sw = self.stride
        ho, wo = g.shape[2:]
        gx = np.zeros(shape, dtype=g.dtype)
        if self.kind == "avg":
            g = g * g.dtype.type(1.0 / (kh * kw))
        for i in range(kh):
            for j in range(kw):
                part = g if self.kind == "avg" else np.where(switches == i * kw + j, g, 0)
                gx[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += part
        return gx

    def counts(self, batch: int, in_shape: tuple[int, int, int], *, backward: bool,
               word: int) -> dict[str, int]:
        """Ledger counts of one pass over a batch of ``in_shape`` maps.

        Forward: ``k_h k_w - 1`` comparisons (max, counted as additions) or additions (avg,
        plus one multiplication by ``1/(k_h k_w)``) per output; the input map read and the
        output written. Backward: max routes each error with one addition (overlapping
        windows accumulate), avg multiplies it once and adds it to ``k_h k_w`` pixels; the
        errors read and the input-sized gradient written.
        """
        c, h, w = in_shape
        _, ho, wo = self.out_shape(in_shape)
        n_out, n_in, k = batch * c * ho * wo, batch * c * h * w, self.size[0] * self.size[1]
        mem = (n_in + n_out) * word
        if not backward:
            out = {"digital_adds": n_out * (k - 1), "mem_bytes": mem}
            if self.kind == "avg":
                out["digital_mults"] = n_out
            return out
        if self.kind == "max":
            return {"digital_adds": n_out, "mem_bytes": mem}
        return {"digital_adds": n_out * k, "digital_mults": n_out, "mem_bytes": mem}
