"""Human-readable views of specs and their differences, for `ablab show`."""

from __future__ import annotations

from .spec import ArchSpec, Stage, diff, effective_window


def describe(spec: ArchSpec) -> list[str]:
    """One line for the stem, one per stage, one for the head."""
    lines = [
        f"input {spec.img_size}px x{spec.in_chans} -> stem {spec.patch_size}x{spec.patch_size} patches"
        f"{' + LayerNorm' if spec.stem_norm else ''}"
        f"{', class token' if spec.class_token else ''}"
    ]
    for i, (st, grid) in enumerate(zip(spec.stages, spec.grids())):
        if st.block == "mlp":
            kind = "MLP-only"
        elif st.attention == "global" or effective_window(grid, st.window) == grid:
            kind = "global attn"
        else:
            kind = f"{'shifted ' if st.shift else ''}window {st.window} attn"
        extras = [f"{st.heads} heads"] if st.heads else []
        extras.append(f"mlp x{st.mlp_ratio:g}")
        if st.rel_pos != "none":
            extras.append(f"rel-pos {st.rel_pos}")
        if spec.pos_embed != "none" and spec.pos_embed_stage == i:
            extras.append("abs pos embed")
        down = f" <- {st.downsample}" if st.downsample != "none" else ""
        lines.append(f"stage {i}: {grid:>3}x{grid:<3} {st.depth:>2} x {kind:<22} dim {st.dim:<5} "
                     f"{', '.join(extras)}{down}")
    lines.append(f"head: {'class token' if spec.pool == 'token' else 'average pool'} -> {spec.num_classes} classes")
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
