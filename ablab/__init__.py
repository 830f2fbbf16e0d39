"""ablab: an architecture-transition ablation laboratory for vision transformers."""
