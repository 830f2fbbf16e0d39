"""Settings: plain frozen dataclasses for data, training, pre-training, measurement, scale, cluster and profiles.

The bottom floor of ablab: no torch, no I/O. Every block a recipe may write is one of these, loaded by
`ablab.schema.load` (types, unknown fields, file:line) and checked by its own `problems()` (ranges and
conflicts, as (field, message) pairs), so every error of a recipe is reported at once.

A field added after runs were first recorded carries `metadata={"added": True}`: while it holds its default it is
left out of the content keys of runs (`ablab.store.keys`), so results recorded before it existed stay valid; a
field removed since is kept in the keys at its only recorded value (`REMOVED`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

Problem = tuple[str, str]  # (field, message)

ADDED = {"added": True}  # see the module docstring
# fields removed after runs were recorded, with the value every recorded run had: content keys keep them, so those
# runs stay valid (`ablab.store.keys`). Hiera's separate-and-pad is the spec's (ArchSpec.separate_and_pad) since
# it changes the model in fine-tuning and inference too.
REMOVED = {"PretrainConfig": {"separate_and_pad": False}}

# classes of the datasets ablab knows without reading them (ImageFolder and Kinetics count their folders)
DATASET_CLASSES = {"shapetex": 10, "cifar10": 10, "cifar100": 100, "shapeclips": 10}
GENERATED = ("shapetex", "shapeclips")  # made in memory from `seed`: train_size and val_size items, no root
CLIP_DATASETS = ("shapeclips", "kinetics")  # clips (B, 3, T, S, S) for video models; the others hold images
FRAME_STRIDE = 4  # Kinetics frames between a clip's frames, as Hiera and MViTv2 sample 16 frames


def _at_least(obj: object, names: tuple[str, ...], least: float) -> list[Problem]:
    return [(n, f"must be at least {least:g}, got {getattr(obj, n)}") for n in names if getattr(obj, n) < least]


def _not_negative(obj: object, names: tuple[str, ...]) -> list[Problem]:
    return [(n, f"must not be negative, got {getattr(obj, n)}") for n in names if getattr(obj, n) < 0]


@dataclass(frozen=True)
class DataConfig:
    """Where images or clips come from. `shapetex` and `shapeclips` are generated (no download); the others load
    from `root`. Clip datasets (CLIP_DATASETS) feed video models, the others image models."""

    name: Literal["shapetex", "cifar10", "cifar100", "imagefolder", "shapeclips", "kinetics"] = "shapetex"
    root: str = ""
    train_size: int = 10000  # generated datasets only
    val_size: int = 2000  # generated datasets only
    seed: int = 0  # generated datasets only: the dataset's own seed, independent of the run's seed
    workers: int = 0  # DataLoader workers for datasets read from disk
    shuffle_labels: bool = field(default=False, metadata=ADDED)  # a control: training labels permuted, nothing to learn
    frame_shuffle: bool = field(default=False, metadata=ADDED)  # a control: every clip's frames permuted, no motion
    frame_stride: int = field(default=FRAME_STRIDE, metadata=ADDED)  # kinetics: frames between a clip's frames
    # kinetics evaluation: [spatial crops, temporal windows] per video, their logits averaged (Hiera, MViTv2: [3, 5])
    views: tuple[int, int] = field(default=(1, 1), metadata=ADDED)
    # shapetex: a red and a blue disc, and which is on top doubles the classes (20): a class that needs positions
    layout: bool = field(default=False, metadata=ADDED)

    def problems(self) -> list[Problem]:
        out = _at_least(self, ("train_size", "val_size"), 1) + _not_negative(self, ("seed", "workers"))
        if self.seed >= 2**31:
            out.append(("seed", f"must be below 2**31, got {self.seed}"))
        if self.train_size > 10_000_000 or self.val_size > 10_000_000:
            out.append(("train_size", "at most 10,000,000 images"))
        if self.workers > 256:
            out.append(("workers", f"at most 256 DataLoader workers, got {self.workers}"))
        return out + self._clip_problems()

    def _clip_problems(self) -> list[Problem]:
        """What is wrong with the fields of clip datasets, or with setting them for another dataset."""
        out = []
        if not 1 <= self.frame_stride <= 64:
            out.append(("frame_stride", f"1 to 64 frames are required, got {self.frame_stride}"))
        if len(self.views) != 2 or not all(1 <= v <= 10 for v in self.views):
            out.append(("views", f"[spatial, temporal]: two view counts from 1 to 10 are required, got "
                                 f"{list(self.views)}"))
        if self.frame_shuffle and self.name not in CLIP_DATASETS:
            out.append(("frame_shuffle", f"permutes the frames of clips; dataset '{self.name}' holds images"))
        if self.name != "kinetics" and self.frame_stride != FRAME_STRIDE:
            out.append(("frame_stride", f"samples videos of kinetics; dataset '{self.name}' has no frames to skip"))
        if self.layout and self.name != "shapetex":
            out.append(("layout", f"places ShapeTex's discs; dataset '{self.name}' is not ShapeTex"))
        if self.name != "kinetics" and tuple(self.views) != (1, 1):
            out.append(("views", f"multi-view evaluation is for kinetics; dataset '{self.name}' is evaluated once"))
        return out

    @property
    def num_classes(self) -> Optional[int]:
        """Classes of the dataset when known without loading it (None for ImageFolder and Kinetics)."""
        return 2 * DATASET_CLASSES["shapetex"] if self.layout else DATASET_CLASSES.get(self.name)

    @property
    def clips(self) -> bool:
        """Whether the dataset holds clips, for video models, rather than images."""
        return self.name in CLIP_DATASETS


@dataclass(frozen=True)
class PretrainConfig:
    """Masked image modeling before supervised fine-tuning (the profile's / step's `train:` settings).

    mae: sparse MAE (the encoder sees the visible mask units only; Hiera, HiViT, ViT); simmim: dense (masked
    patches replaced by a learned token, linear prediction head; any spec); greenmim: sparse with group window
    attention (Swin-style window specs). Optimiser: AdamW, cosine schedule with linear warm-up, like TrainConfig.
    The encoder pre-trains the spec `ablab.mim.spec.pretrain_spec` makes: the fine-tuning spec with this block's
    drop_path and `set` windows, whose weights still load into the fine-tuning model.
    """

    method: Literal["mae", "simmim", "greenmim"] = "mae"
    mask_ratio: float = 0.75
    mask_unit: int = 32  # px of the model's input; Hiera / GreenMIM 32, MAE on ViT / HiViT 16
    batchwise: bool = False  # one mask per batch (GreenMIM Section 3.5; greenmim always masks batch-wise)
    epochs: int = 1
    batch_size: int = 128
    lr: float = 1.5e-4
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW's; MAE and Hiera Table A1(a) 0.9, 0.95; SimMIM, GreenMIM 0.999
    warmup_epochs: float = 1.0
    decoder_depth: int = 1  # transformer blocks of the MAE / GreenMIM decoder
    decoder_dim: int = 512
    decoder_heads: int = 16
    multiscale: bool = False  # Hiera's decoder input: every stage's output fused, not only the last
    norm_pix: bool = True  # MAE's target: pixels normalised per patch
    # the encoder's drop path in pre-training (Hiera Table 3c); fine-tuning keeps its own, train.drop_path
    drop_path: float = field(default=0.0, metadata=ADDED)
    # set_fields-style spec overrides for pre-training only; stage windows alone, as GreenMIM's 14x14 windows in
    # pre-training and 7x7 in fine-tuning (Table 1): e.g. {'stages.*.window': 14}
    set: dict[str, Any] = field(default_factory=dict, metadata=ADDED)
    # what MAE / GreenMIM predict of each masked final token: pixels (norm_pix) or MaskFeat's HOG (Hiera Table 3c)
    target: Literal["pixels", "hog"] = field(default="pixels", metadata=ADDED)

    def problems(self) -> list[Problem]:
        """(field, message) for every value out of range or in conflict."""
        out = self._set_problems()
        if not 0.0 <= self.drop_path < 1.0:
            out.append(("drop_path", f"a probability in [0, 1) is required, got {self.drop_path}"))
        if self.target == "hog" and self.method == "simmim":
            out.append(("target", "hog is predicted by mae and greenmim; simmim reconstructs the pixels"))
        if not 0.0 <= self.mask_ratio < 1.0:
            out.append(("mask_ratio", f"must be in [0, 1), got {self.mask_ratio}"))
        out += _at_least(self, ("mask_unit", "epochs", "batch_size", "decoder_dim", "decoder_heads"), 1)
        if self.epochs > 100_000 or self.batch_size > 1 << 20 or self.decoder_depth > 1000 or self.decoder_dim > 1 << 16:
            out.append(("epochs", "at most 100,000 epochs, batches of 1,048,576, decoders of 1,000 blocks x 65,536"))
        if self.warmup_epochs > self.epochs:
            out.append(("warmup_epochs", f"{self.warmup_epochs} warm-up epochs of {self.epochs}"))
        out += _not_negative(self, ("min_lr", "weight_decay", "warmup_epochs", "decoder_depth"))
        if self.lr <= 0:
            out.append(("lr", f"must be positive, got {self.lr}"))
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            out.append(("betas", f"two numbers in [0, 1) are required, got {list(self.betas)}"))
        if self.decoder_dim >= 1 and self.decoder_heads >= 1 and self.decoder_dim % self.decoder_heads:
            out.append(("decoder_heads", f"{self.decoder_heads} heads do not divide decoder_dim {self.decoder_dim}"))
        return out

    def _set_problems(self) -> list[Problem]:
        """What is wrong with `set`, spec aside (`ablab.mim.spec.pretrain_spec` checks it against the spec)."""
        out = []
        for key, value in self.set.items():
            if key == "drop_path":
                out.append(("set", "'drop_path': drop path in pre-training is its own field, pretrain.drop_path"))
            elif not re.fullmatch(r"stages\.(\*|\d+)\.window", str(key)):
                out.append(("set", f"'{key}' cannot differ between pre-training and fine-tuning; only a stage's "
                                   "window may ('stages.<index or *>.window'): relative position bias tables are "
                                   "resized to the fine-tuning window when the encoder loads, while other fields "
                                   "change weight shapes or the token grid, so the encoder could not be fine-tuned"))
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                out.append(("set", f"'{key}': a window of at least 1 token is required, got {value!r}"))
        return out


def units_per_side(img_size: int, patch_size: int, unit: int) -> int:
    """Mask units of `unit` px along one side of the image; ValueError unless they tile the image and are a whole
    number of the encoder's `patch_size` px tokens."""
    if unit <= 0 or img_size % unit:
        raise ValueError(f"mask_unit {unit} px does not tile the {img_size} px image")
    if unit % patch_size:
        raise ValueError(f"mask_unit {unit} px is not a whole number of the encoder's {patch_size} px tokens")
    return img_size // unit


def visible_count(units: int, ratio: float) -> int:
    """Units each sample keeps at mask `ratio` (at least one, at most all but one when masking anything)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {ratio}")
    keep = int(round(units * (1.0 - ratio)))
    return max(1, min(units - (1 if ratio > 0 else 0), keep))


@dataclass(frozen=True)
class InitConfig:
    """Weights a step starts from (`init:` in `train:`): a checkpoint file of `format` timm (timm's state dict of the
    step's family: ViT / DeiT, Swin, MViTv2, Hiera), official (as the papers' code released them: MAE's ViT, Swin's,
    Hiera's, fine-tuned or pre-trained) or ablab (a run's checkpoint.pt or an encoder.pt)."""

    path: str
    format: Literal["timm", "official", "ablab"] = "timm"

    def problems(self) -> list[Problem]:
        return [("path", "a checkpoint file is required")] if not self.path.strip() else []


@dataclass(frozen=True)
class TrainConfig:
    """A supervised recipe (AdamW, cosine schedule with linear warm-up), the same for every step."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    drop_path: float = 0.0
    clip_grad: Optional[float] = None
    layer_decay: Optional[float] = field(default=None, metadata=ADDED)  # layer-wise lr decay for fine-tuning, (0, 1]
    ema: Optional[float] = None  # EMA decay; evaluated instead of the raw weights when set
    # validation images evaluated after every epoch but the last, which evaluates them all (None: all every epoch)
    epoch_val: Optional[int] = field(default=None, metadata=ADDED)
    amp: Literal["none", "bf16", "fp16"] = "none"  # CUDA only
    hflip: bool = True
    rrc_scale: Optional[list[float]] = None  # RandomResizedCrop scale range, e.g. [0.08, 1.0] (timm)
    randaugment: str = ""  # a timm RandAugment string, e.g. rand-m9-mstd0.5-inc1 (images from disk)
    mixup: float = 0.0
    cutmix: float = 0.0
    data: DataConfig = field(default_factory=DataConfig)
    # masked image modeling first, then fine-tuning under these settings
    pretrain: Optional[PretrainConfig] = field(default=None, metadata=ADDED)
    # start from a checkpoint on disk (position embeddings interpolated, a head of other classes left at init)
    init: Optional[InitConfig] = field(default=None, metadata=ADDED)

    def problems(self) -> list[Problem]:
        """(field, message) for every value out of range or in conflict."""
        out = _at_least(self, ("epochs", "batch_size"), 1)
        if self.epochs > 100_000 or self.batch_size > 1 << 20:
            out.append(("epochs", "at most 100,000 epochs of at most 1,048,576 images per batch"))
        if self.lr <= 0:
            out.append(("lr", f"must be positive, got {self.lr}"))
        out += _not_negative(self, ("min_lr", "weight_decay", "warmup_epochs", "label_smoothing", "drop_path", "mixup",
                                    "cutmix"))
        for name in ("label_smoothing", "drop_path"):
            if not getattr(self, name) < 1:
                out.append((name, f"a probability in [0, 1) is required, got {getattr(self, name)}"))
        if self.ema is not None and not 0 < self.ema < 1:
            out.append(("ema", f"an EMA decay in (0, 1) is required, got {self.ema}"))
        if self.clip_grad is not None and not self.clip_grad > 0:
            out.append(("clip_grad", f"must be positive, got {self.clip_grad}"))
        if self.warmup_epochs > self.epochs:
            out.append(("warmup_epochs", f"{self.warmup_epochs} warm-up epochs of {self.epochs}"))
        if self.data.name in GENERATED and self.data.train_size < self.batch_size:
            out.append(("batch_size", f"{self.batch_size} is more than the {self.data.train_size} training items: "
                                      "an epoch would hold no batch"))
        if self.epoch_val is not None and self.epoch_val < 1:
            out.append(("epoch_val", f"must be at least 1, got {self.epoch_val}"))
        if self.layer_decay is not None and not 0.0 < self.layer_decay <= 1.0:
            out.append(("layer_decay", f"must be in (0, 1], got {self.layer_decay}"))
        if self.init is not None and self.pretrain is not None:
            out.append(("init", "a step starts from a checkpoint (init) or from its own pre-training, not both"))
        out += [(f"init.{name}", message) for name, message in (self.init.problems() if self.init else [])]
        return out


@dataclass(frozen=True)
class DenseDataConfig:
    """Images with per-pixel classes (and instances) for a dense task: `scenes` is generated (ShapeTex objects in
    scenes, `ablab.data.scenes`: train_size and val_size of them from `seed`, no root); `ade20k` (semantic
    segmentation: ADEChallengeData2016's release folders) and `coco` (detection: COCO 2017's images and instances
    json) load their whole train and val splits from `root` (or `ablab run --task ... --data-root`)."""

    name: Literal["scenes", "ade20k", "coco"] = "scenes"
    root: str = field(default="", metadata=ADDED)
    train_size: int = 2000
    val_size: int = 500
    seed: int = 0
    max_objects: int = 4  # objects per scene, 1 to this many
    radius: tuple[float, float] = (0.0625, 0.25)  # objects' radii, log-uniform between these fractions of the side

    def problems(self) -> list[Problem]:
        out = _at_least(self, ("train_size", "val_size", "max_objects"), 1) + _not_negative(self, ("seed",))
        if len(self.radius) != 2 or not 0 < self.radius[0] <= self.radius[1] <= 0.5:
            out.append(("radius", f"[low, high] with 0 < low <= high <= 0.5 of the side is required, got "
                                  f"{list(self.radius)}"))
        if self.train_size > 1_000_000 or self.val_size > 1_000_000 or self.max_objects > 64:
            out.append(("train_size", "at most 1,000,000 scenes of at most 64 objects"))
        if self.name == "scenes" and self.root:
            out.append(("root", f"scenes are generated in memory and read nothing from disk, got root {self.root!r}"))
        return out


def _dense_problems(cfg: "SegmentationConfig | DetectionConfig") -> list[Problem]:
    """What the two dense tasks' settings share: a schedule that fits, and maps down to stride 32."""
    out = _at_least(cfg, ("epochs", "batch_size", "img_size"), 1) + _not_negative(cfg, ("weight_decay", "warmup_epochs"))
    if cfg.lr <= 0:
        out.append(("lr", f"must be positive, got {cfg.lr}"))
    if cfg.warmup_epochs > cfg.epochs:
        out.append(("warmup_epochs", f"{cfg.warmup_epochs} warm-up epochs of {cfg.epochs}"))
    if cfg.data.name == "scenes" and cfg.batch_size > cfg.data.train_size:
        out.append(("batch_size", f"{cfg.batch_size} is more than the {cfg.data.train_size} training scenes"))
    if cfg.img_size % 32:
        out.append(("img_size", f"the maps reach stride 32: a multiple of 32 px is required, got {cfg.img_size}"))
    if cfg.epoch_val is not None and cfg.epoch_val < 1:
        out.append(("epoch_val", f"must be at least 1, got {cfg.epoch_val}"))
    return out


@dataclass(frozen=True)
class SegmentationConfig:
    """Semantic segmentation with a step as the backbone: UperNet and the auxiliary FCN head over its feature maps
    (`ablab.dense.segmenter`), trained end to end with AdamW, a linear warm-up and mmsegmentation's poly decay, at
    `img_size` px. The defaults are Swin's and HiViT's ADE20K setting: 160k iterations of 16 crops of 512 px (127
    epochs of ADE20K's 20,210 images), lr 6e-5, weight decay 0.01, 1,500 warm-up iterations (1.2 epochs), poly
    power 1, UperNet of 512 channels, auxiliary head of 256 at weight 0.4."""

    epochs: int = 127
    batch_size: int = 16
    lr: float = 6e-5
    weight_decay: float = 0.01
    warmup_epochs: float = 1.2
    power: float = 1.0
    img_size: int = 512
    channels: int = 512
    aux_channels: int = 256
    aux_weight: float = 0.4
    epoch_val: Optional[int] = None  # scenes validated after each earlier epoch (None: all); the last, all
    data: DenseDataConfig = field(default_factory=DenseDataConfig)
    # the decode and auxiliary heads' lr over the backbone's (mmsegmentation's `lr_mult`; 1: the papers' one rate)
    head_lr_scale: float = field(default=1.0, metadata=ADDED)

    def problems(self) -> list[Problem]:
        out = _dense_problems(self) + _at_least(self, ("channels", "aux_channels"), 1)
        if self.head_lr_scale <= 0:
            out.append(("head_lr_scale", f"must be positive, got {self.head_lr_scale}"))
        if self.data.name == "coco":
            out.append(("data.name", "coco holds instances, not semantic maps: segmentation reads scenes or ade20k"))
        out += _not_negative(self, ("aux_weight",))
        if self.power <= 0:
            out.append(("power", f"must be positive, got {self.power}"))
        return out


@dataclass(frozen=True)
class DetectionConfig:
    """Detection and instance segmentation with a step as the backbone: Mask R-CNN with an FPN over its feature maps
    (`ablab.dense.detector`), trained end to end with AdamW, a linear warm-up and mmdetection's step decay (x 0.1
    after each epoch in `lr_steps`), images resized to `img_size` px squared. The defaults are Swin's and HiViT's
    COCO 1x setting: 12 epochs of 16 images, lr 1e-4, weight decay 0.05, decay after epochs 8 and 11, 500 warm-up
    iterations (0.07 of an epoch of COCO's 118k images), FPN and heads at 256 channels, 256 anchors and 512 RoIs
    sampled per image for the losses (Detectron's); the papers' 800 px is the short side of a 1333 px box, here the
    side of a square. A scene of a few objects needs far fewer samples, and RoIAlign's backward over 512 RoIs is
    most of a CPU step."""

    epochs: int = 12
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 0.068
    lr_steps: tuple[int, ...] = (8, 11)
    img_size: int = 800
    fpn_channels: int = 256
    anchors_per_image: int = 256  # the RPN's sampled anchors per image
    rois_per_image: int = 512  # the box head's sampled proposals per image
    epoch_val: Optional[int] = None  # scenes validated after each earlier epoch (None: all); the last, all
    data: DenseDataConfig = field(default_factory=DenseDataConfig)

    def problems(self) -> list[Problem]:
        out = _dense_problems(self) + _at_least(self, ("fpn_channels", "anchors_per_image", "rois_per_image"), 1)
        if self.data.name == "ade20k":
            out.append(("data.name", "ade20k holds semantic maps, not instances: detection reads scenes or coco"))
        if list(self.lr_steps) != sorted(set(self.lr_steps)) or any(not 0 < s < self.epochs for s in self.lr_steps):
            out.append(("lr_steps", f"distinct increasing epochs between 0 and {self.epochs} are required, got "
                                    f"{list(self.lr_steps)}"))
        return out


@dataclass(frozen=True)
class TaskConfig:
    """The dense tasks a profile can run with every step as the backbone (`ablab run --task`): its `task:` block."""

    segmentation: Optional[SegmentationConfig] = None
    detection: Optional[DetectionConfig] = None


# what each dense task's runs record per seed (metrics.json) and the summary averages, pairs and judges
DENSE_METRICS = {"segmentation": ("miou",), "detection": ("box_ap", "mask_ap")}
METRIC_LABELS = {"miou": "mIoU", "box_ap": "box AP", "mask_ap": "mask AP"}
# what each task puts on a backbone, and how it scores
DENSE_HEADS = {"segmentation": "UperNet", "detection": "Mask R-CNN with FPN (COCO's AP by pycocotools)"}


def dense_heads(metrics: list[str]) -> list[str]:
    """What scored each dense task among `metrics`, once per task: 'mIoU: UperNet on each seed run's feature maps
    (--task segmentation)'."""
    tasks = [t for t, ms in DENSE_METRICS.items() if set(ms) & set(metrics)]
    return [f"{' and '.join(METRIC_LABELS[m] for m in DENSE_METRICS[t])}: {DENSE_HEADS[t]} on each seed run's "
            f"feature maps (--task {t})" for t in tasks]


TASKS = ("classification", *DENSE_METRICS)  # what `ablab run --task` takes; classification is every profile's


@dataclass(frozen=True)
class Scale:
    """A profile's shrink of every step: image size, factors for patch sizes, widths, head counts and depths, and
    a clip model's frames."""

    img_size: int
    patch: float = 1.0  # patch-size factor: 16 -> 4 at 0.25
    width: float = 1.0
    depth: float = 1.0
    frames: Optional[int] = field(default=None, metadata=ADDED)  # input frames of clip models (None: the spec's)
    # each block's residual outputs start at init_std / sqrt(2 x blocks) (GPT-2's; ArchSpec.depth_scaled_init)
    depth_scaled_init: bool = field(default=False, metadata=ADDED)
    # factor of every stage's head count (None: the width factor). Per-head parameters (MViTv2's pooling convs,
    # decomposed relative positions) grow with head width, so fewer heads per channel changes their share
    heads: Optional[float] = field(default=None, metadata=ADDED)

    def problems(self) -> list[Problem]:
        out = _at_least(self, ("img_size",), 1)
        if self.frames is not None and not 2 <= self.frames <= 4096:
            out.append(("frames", f"a clip has 2 to 4096 frames, got {self.frames}"))
        if self.img_size > 4096:
            out.append(("img_size", f"at most 4096 px, got {self.img_size}"))
        factors = ("patch", "width", "depth") + (("heads",) if self.heads is not None else ())
        return out + [(n, f"a factor in (0, 4] is required, got {getattr(self, n)}") for n in factors
                      if not 0 < getattr(self, n) <= 4]


COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
UNDER_LOAD = ("mark", "retry", "refuse")  # what a figure taken on a busy machine gets (Measure.under_load)


@dataclass(frozen=True)
class Measure:
    """How throughput is measured: eval mode, no grad, `warmup` forwards, then `rounds` rounds of `min_time` seconds
    at every batch size of the sweep; the batch with the best median is reported, with its quartiles. `amp: auto` is
    fp16 autocast on CUDA (the papers' practice) and fp32 on the CPU; fp16 / bf16 autocast needs CUDA. A busy
    machine (`ablab.cost.load`) is met as `under_load` says: mark the figure as taken under load, retry (measure
    again twice, 30 s apart, then mark), or refuse (record no figure)."""

    batch_sizes: tuple[int, ...] = (1, 8)  # the sweep on the CPU, and on CUDA unless cuda_batch_sizes is given
    cuda_batch_sizes: tuple[int, ...] = ()  # the sweep on CUDA, where batches that fill the GPU are fastest
    min_time: float = 1.0
    warmup: int = 3  # untimed forwards per batch size (torch.compile compiles in the first, CUDA graphs record later)
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N
    amp: Literal["auto", "none", "fp16", "bf16"] = "auto"
    channels_last: bool = False  # model and input in channels_last memory format
    compile: Literal[COMPILE_MODES] = "none"  # torch.compile mode, or none
    rounds: int = field(default=5, metadata=ADDED)  # timed rounds per batch size: the figure is their median
    under_load: Literal[UNDER_LOAD] = field(default="mark", metadata=ADDED)  # mark, retry or refuse (see above)

    def problems(self) -> list[Problem]:
        """(field, message) for every value out of range or in conflict."""
        out = []
        for name in ("batch_sizes", "cuda_batch_sizes"):
            sizes = getattr(self, name)
            if any(not 1 <= b <= 65536 for b in sizes) or len(set(sizes)) != len(sizes):
                out.append((name, f"distinct batch sizes from 1 to 65536 are required, got {list(sizes)}"))
        if not self.batch_sizes:
            out.append(("batch_sizes", "at least one batch size is required"))
        if not 0 < self.min_time <= 600:
            out.append(("min_time", f"seconds in (0, 600] are required, got {self.min_time}"))
        if not 1 <= self.warmup <= 1000:
            out.append(("warmup", f"1 to 1000 warm-up forwards are required, got {self.warmup}"))
        if not 1 <= self.rounds <= 1000:
            out.append(("rounds", f"1 to 1000 timed rounds are required, got {self.rounds}"))
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            out.append(("device", f"auto, cpu, cuda or cuda:N is required, got '{self.device}'"))
        if self.device == "cpu" and self.amp in ("fp16", "bf16"):
            out.append(("amp", f"{self.amp} autocast is measured on CUDA only; the CPU measures fp32 "
                               "(amp: auto is fp16 on CUDA and fp32 on the CPU)"))
        return out

    def resolve(self, cuda: bool) -> Setting:
        """The measurement as it runs on a machine with (`cuda`) or without CUDA: device `auto` is CUDA when
        present, `amp: auto` fp16 on CUDA and fp32 on the CPU, the CUDA sweep where one is given.
        ValueError for what that machine cannot do."""
        device = ("cuda" if cuda else "cpu") if self.device == "auto" else self.device
        on_cuda = device.startswith("cuda")
        if on_cuda and not cuda:
            raise ValueError(f"measure.device is {device}, but this machine has no CUDA device")
        amp = ("fp16" if on_cuda else "none") if self.amp == "auto" else self.amp
        if amp != "none" and not on_cuda:
            raise ValueError(f"measure.amp {amp} autocasts on CUDA only, and this machine measures on the CPU; "
                             "amp: auto measures fp16 on CUDA and fp32 on the CPU")
        sizes = self.cuda_batch_sizes if on_cuda and self.cuda_batch_sizes else self.batch_sizes
        return Setting(device, "fp32" if amp == "none" else amp, tuple(sizes), self.min_time, self.warmup,
                       self.channels_last, self.compile, self.rounds, self.under_load)


@dataclass(frozen=True)
class Setting:
    """A throughput measurement as it runs on one machine: a profile's Measure with `auto` resolved."""

    device: str = "cpu"  # cpu, cuda or cuda:N
    dtype: str = "fp32"  # fp32, or the fp16 / bf16 autocast on CUDA
    batch_sizes: tuple[int, ...] = (1, 8)
    min_time: float = 1.0
    warmup: int = 3
    channels_last: bool = False
    compile: str = "none"
    rounds: int = 5
    under_load: str = "mark"  # mark, retry or refuse


@dataclass(frozen=True)
class ClusterConfig:
    """Resources of one (step, seed) job of `ablab run --executor submitit`; every job of a submission gets the
    same, so they go out as one array. A recipe's `cluster:` block; `ablab run`'s options of the same names
    override it."""

    cluster: Literal["slurm", "local"] = "slurm"  # local: submitit's local executor (this machine, no scheduler)
    partition: str = ""  # SLURM partition; "" leaves it to the cluster's default
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 1  # processes per node; above 1 each task is one torch.distributed (DDP) rank
    cpus_per_task: Optional[int] = None  # None: the cluster's default
    mem_gb: Optional[float] = None  # memory per node; None: the cluster's default
    timeout_min: int = 24 * 60  # a job reaching it is requeued and resumes from its last epoch checkpoint
    array_parallelism: int = 256  # how many jobs of the array SLURM runs at once

    def problems(self) -> list[Problem]:
        """(field, message) for every value out of range."""
        out = []
        for name in ("nodes", "tasks_per_node", "cpus_per_task", "timeout_min", "array_parallelism"):
            value = getattr(self, name)
            if value is not None and value < 1:
                out.append((name, f"must be at least 1, got {value}"))
        if self.gpus_per_node < 0:
            out.append(("gpus_per_node", f"must not be negative, got {self.gpus_per_node}"))
        if self.mem_gb is not None and self.mem_gb <= 0:
            out.append(("mem_gb", f"must be positive, got {self.mem_gb}"))
        if self.cluster == "local" and self.nodes > 1:
            out.append(("nodes", f"the local cluster is this one machine: nodes must be 1, got {self.nodes}"))
        return out


@dataclass(frozen=True)
class Profile:
    """One scale of a recipe: the paper's (no `scale`) or a shrink, with its measurement and training settings."""

    name: str
    scale: Optional[Scale] = None
    num_classes: Optional[int] = None
    measure: Measure = Measure()
    train: TrainConfig = TrainConfig()
    seeds: tuple[int, ...] = ()  # training seeds `ablab run` uses when given no --seeds
    trains: bool = True  # False: the profile has no `train:` block and only measures (its head: num_classes, or
    # the spec's own)
    task: TaskConfig = TaskConfig()  # dense tasks on top of the classification runs (`ablab run --task`)
    of: str = ""  # a variant's profile: the one its command-line overrides change (`ablab.overrides`)
    overrides: tuple[tuple[str, Any], ...] = ()  # a variant's (field path, value) pairs
