"""Human-readable views of specs and their differences, for `ablab show`."""

from __future__ import annotations

from .kinds import HEADS
from .spec import ArchSpec, Stage, diff


def describe(spec: ArchSpec) -> list[str]:
    """One line for the stem, one per stage (its depth in the papers' modules of two residual layers), one for the
    head."""
    stem = (f"{spec.stem_kernel}x{spec.stem_kernel} conv, stride {spec.patch_size}" if spec.stem_kernel
            else f"{spec.patch_size}x{spec.patch_size} patches")
    clip = ""
    if spec.frames > 1:  # a clip: the stem's temporal kernel and stride, and the token frames it leaves
        kt = spec.stem_kernel_t or spec.patch_t
        stem = f"{kt}x{stem} (time stride {spec.patch_t}: {spec.t_tokens} token frames)"
        clip = f"{spec.frames} frames x "
    lines = [f"input {clip}{spec.img_size}px x{spec.in_chans} -> stem {stem}"
             f"{' + LayerNorm' if spec.stem_norm else ''}{', class token' if spec.class_token else ''}"]
    for ctx in spec.contexts():
        st = ctx.stage
        modules = ctx.block.modules(st.depth)
        extras = [f"{st.depth} blocks"] if modules != str(st.depth) else []
        extras += [f"{st.heads} heads"] if st.heads else []
        extras.append(f"mlp x{st.mlp_ratio:g}")
        time = spec.frames > 1 and spec.pool_kernel_t > 1  # 3D pools: t x k x k, stride 1 in time
        kernel = (lambda k: f"{spec.pool_kernel_t}x{k}x{k}") if time else str
        if st.pools_kv:
            extras.append(f"KV {st.pool} k{kernel(st.kv_kernel)}/s{st.kv_stride}")
        if st.pool_stride1:
            extras.append(f"Q {st.pool} k{kernel(st.q_kernel)}/s1")
        extras.append(ctx.rel_pos.describe(ctx))
        if st.residual_pooling:
            extras.append("residual pooling")
        if st.pos_embed:
            extras.append("abs pos embed" + (" (space + time)" if spec.sep_pos_embed else ""))
        extras.append(ctx.downsample.describe(ctx))
        where = f"{ctx.side}x{ctx.side}" if ctx.side else f"{ctx.tokens} tok"
        lines.append(f"stage {ctx.index}: {where:>7} {modules:>4} x {ctx.block.describe(ctx):<24} dim {st.dim:<5} "
                     f"{', '.join(e for e in extras if e)}")
    pool = HEADS[spec.pool].describe
    order = f"LayerNorm -> {pool}" if spec.head_norm == "tokens" else f"{pool} -> LayerNorm"
    lines.append(f"head: {order} -> {spec.num_classes} classes")
    return lines


def describe_diff(old: ArchSpec, new: ArchSpec) -> list[str]:
    """'field: old -> new' for every field that changed."""
    changes = diff(old, new)
    if not changes:
        return ["(no change)"]
    lines = []
    for path, a, b in changes:
        if isinstance(b, Stage) and a is None:
            lines.append(f"{path}: added ({_stage_brief(b)})")
        elif isinstance(a, Stage) and b is None:
            lines.append(f"{path}: removed ({_stage_brief(a)})")
        else:
            lines.append(f"{path}: {a} -> {b}")
    return lines


def _stage_brief(st: Stage) -> str:
    kind = "MLP-only" if st.block == "mlp" else f"{st.attention} attn, {st.heads} heads"
    return f"{st.depth} x {kind}, dim {st.dim}" + (f", {st.downsample}" if st.downsample != "none" else "")
