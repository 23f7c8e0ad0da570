"""Run settings: one object per stage, built straight from its config group, each owning its checks.

The entry point hands each Hydra group (as a plain dict) to `from_config`; an unknown key is an error that
names the closest real key, so `+train.epochs=3` can never be silently ignored. Every stage says what
belongs to a run's identity (`identity()`): what can change its result. `run_identity` joins them, and its
fingerprint names the run's folder, so different settings never share a record.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import importlib
import inspect
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from archbench.base.numerics import AMP_CHOICES, compile_mode, torch_major_minor
from archbench.quiet import QuietSettings
from archbench.train.budget import Budget, budget_kinds, parse_budget
from archbench.train.loop_settings import TrainSettings

# Settings are read without torch (the record module and the report flatten them): the stages' own modules,
# whose signatures and checks they borrow, are imported inside the methods that need them.

# Bumped when a change of code makes old results incomparable; part of every run's identity and of its
# numerics identity. tests/test_numerics.py pins a few deterministic fp32 steps of each family: a change
# that moves those losses changes what models learn, and must bump this.
CODE_MAJOR_VERSION = 1


class SettingsError(ValueError):
    """A setting that no stage reads, or a value no stage accepts; the message names the fix."""


def check_keys(group: str, given: dict, known: list[str]) -> None:
    """Unknown keys in `group` raise, naming the closest real key (`train.epochs` -> `train.budget.epochs`)."""
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return
    key = unknown[0]
    full = (lambda k: f"{group}.{k}") if group else (lambda k: k)
    candidates = [full(k) for k in known]
    # A key one level too high (train.lr for train.optimizer.lr) is closest by its last part, which spelling
    # distance misses (it offered train, train.amp, train.scheduler): same last part first, same group first.
    leaf, top = full(key).rsplit(".", 1)[-1], full(key).split(".", 1)[0]
    same_leaf = sorted((k for k in candidates if "." in k and k.rsplit(".", 1)[-1] == leaf),
                       key=lambda k: (k.split(".", 1)[0] != top, k.count("."), k))
    spelled = difflib.get_close_matches(full(key), candidates, n=3, cutoff=0.6)
    close = list(dict.fromkeys(same_leaf + spelled))[:3]
    if group == "train" and key in budget_kinds():
        close = [f"train.budget.{key}"]
    hint = f"did you mean {', '.join(close)}?" if close else f"known keys: {', '.join(known)}"
    raise SettingsError(f"{full(key)} is not a setting any stage reads ({hint}); nothing was run. "
                        "Config keys are listed in conf/ (python -m archbench --cfg job prints them all)")


# Hydra parses true/false in any case as booleans; OmegaConf's typed fields also take these words. A string
# such as "no" must never pass for True by being non-empty, so every boolean setting goes through parse_bool.
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def parse_bool(value, key: str, also: tuple = ()):
    """A boolean setting as a bool, from any spelling Hydra or OmegaConf accepts; `also`: extra allowed words."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in also:
            return word
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
    allowed = ", ".join((*also, "true", "false"))
    raise SettingsError(f"{key}={value!r} is not a boolean: use {allowed} (any case; yes/no, on/off and 1/0 work too)")


def parse_threads(value) -> int | None:
    """`threads`: a positive count of torch intra-op threads, or None for torch's own default.

    Anything else is refused rather than passed over: 0 used to leave torch's default in place while the
    record said 0, so the run's speed figures were filed under a thread count they were not taken with.
    """
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise SettingsError(f"threads={value!r} is not a positive whole number: use threads=N with N >= 1 "
                        f"(torch intra-op threads, e.g. threads={os.cpu_count() or 1} for every core here) "
                        f"or threads=null for torch's default")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _locate(target: str) -> Callable:
    """`package.module.Name` -> the object (what Hydra's `_target_` names), without importing Hydra here."""
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise SettingsError(f"_target_={target!r} cannot be imported ({err}): name a class such as "
                            "torch.optim.SGD or archbench.train.schedules.Cosine") from err


def _signature_keys(fn: Callable, skip: tuple[str, ...] = ()) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p not in skip and p not in ("self", "kwargs")]


# ------------------------------------------------------------------------------------------------- model

@dataclass(frozen=True)
class ModelSettings:
    name: str  # the record's and folder's name; for timm models the timm name
    family: str | None = None
    stem: str = "auto"
    kwargs: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict) -> "ModelSettings":
        check_keys("model", config, [f.name for f in dataclasses.fields(cls)])
        settings = cls(**{**config, "kwargs": dict(config.get("kwargs") or {})})
        if not isinstance(settings.name, str) or not settings.name:
            raise SettingsError(f"model.name={settings.name!r} must name a model (e.g. model=resnet20, or "
                                "model=timm model.name=resnext50_32x4d)")
        return settings

    @property
    def source(self) -> str:
        return "timm" if self.family == "timm" else "archbench"

    @property
    def builder_name(self) -> str:
        return f"timm/{self.name}" if self.source == "timm" else self.name

    def identity(self) -> dict:
        return {"name": self.name, "source": self.source, "stem": self.stem, "kwargs": dict(sorted(self.kwargs.items()))}


# -------------------------------------------------------------------------------------------------- data

# Keys that say where the data lives or how it is read, not what it is: they never split a run's identity.
DATA_LOCATION_KEYS = ("root", "download", "cache_dir", "on_bad_image")


@dataclass(frozen=True)
class DataSettings:
    name: str
    label: str | None = None  # what the dataset is called in reports, e.g. "CIFAR-10 (JPEG image folder)"
    order_seed: int | None = None  # data order and augmentation draws; None follows the run's seed
    load: dict = field(default_factory=dict)  # keyword arguments of archbench.data.load_dataset
    augment: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict) -> "DataSettings":
        from archbench.data import load_dataset  # torch: see the note on imports at the top

        config = dict(config)
        known = _signature_keys(load_dataset) + ["augment", "label", "order_seed"]
        check_keys("data", config, known)
        augment = dict(config.pop("augment", None) or {})
        label, order_seed = config.pop("label", None), config.pop("order_seed", None)
        for key in ("download", "extra"):
            if key in config:
                config[key] = parse_bool(config[key], f"data.{key}")
        for key in ("root", "cache_dir"):
            if isinstance(config.get(key), str) and config[key]:
                # relative to where the command was launched, whatever the launcher's working folder
                config[key] = os.path.abspath(os.path.expanduser(config[key]))
        if order_seed is not None and (not isinstance(order_seed, int) or isinstance(order_seed, bool) or order_seed < 0):
            raise SettingsError(f"data.order_seed={order_seed!r} must be null (follow seed) or an integer >= 0")
        return cls(name=config["name"], label=label, order_seed=order_seed, load=config, augment=augment)

    def identity(self) -> dict:
        from archbench.data import check_augment, content_fingerprint  # torch: see the note at the top

        what = {k: v for k, v in sorted(self.load.items()) if k not in DATA_LOCATION_KEYS}
        if self.name == "imagefolder" and self.load.get("root"):
            what["folder"] = os.path.basename(os.path.normpath(self.load["root"]))  # which images, not where
            # what is in it: a folder changed since a record was made is a new variant, never a stale skip.
            # Only your own folders: the presets (cifar10_jpg) are fixed archives whose records keep their identity.
            what["content"] = content_fingerprint(self.load["root"])
        return {**what, "augment": check_augment(self.augment), "order_seed": self.order_seed}


# ------------------------------------------------------------------------------------------------ recipe

@dataclass(frozen=True)
class Recipe:
    """A training recipe (conf/train/*.yaml): optimizer, schedule, budget and the knobs around them."""
    name: str
    budget: Budget
    optimizer: dict  # `_target_` plus keyword arguments, e.g. torch.optim.SGD, lr, momentum
    scheduler: dict  # `_target_` plus keyword arguments of archbench.train.schedules
    batch_size: int = 128
    eval_batch_size: int = 512
    lr_reference_batch: int = 128
    decay_norm_and_bias: bool = False
    label_smoothing: float = 0.0
    grad_clip_norm: float | None = None
    ema_decay: float | None = None
    amp: str = "off"
    channels_last: bool | str = False
    compile: bool | str = "off"  # one of base.numerics.COMPILE_MODES after validation (true/false accepted as default/off)
    deterministic: bool = False
    target_top1: float | None = None
    checkpoint_every_s: float = 60.0  # how often a checkpoint is written, mid-epoch too; not part of the result
    val_per_epoch: int = 1  # validation passes per epoch for the learning curve; selection reads epoch ends only

    @classmethod
    def from_config(cls, config: dict) -> "Recipe":
        check_keys("train", config, [f.name for f in dataclasses.fields(cls)])
        config = dict(config)
        budget = dict(config.get("budget") or {})
        check_keys("train.budget", budget, list(budget_kinds()))
        try:
            config["budget"] = parse_budget(**budget)
        except ValueError as err:
            raise SettingsError(str(err)) from err
        for part in ("optimizer", "scheduler"):
            if not isinstance(config.get(part), dict) or "_target_" not in config[part]:
                raise SettingsError(f"train.{part} needs a _target_ (see conf/train/standard.yaml)")
            config[part] = {k: v for k, v in config[part].items() if k != "_partial_"}
        for key in ("decay_norm_and_bias", "deterministic", "channels_last"):
            if key in config:
                config[key] = parse_bool(config[key], f"train.{key}", ("auto",) if key == "channels_last" else ())
        recipe = cls(**config)
        recipe.validate()
        return recipe

    @property
    def lr(self) -> float:
        return self.optimizer.get("lr")

    @property
    def weight_decay(self) -> float:
        return self.optimizer.get("weight_decay", 0.0)

    def validate(self) -> None:
        for key in ("batch_size", "eval_batch_size", "lr_reference_batch"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SettingsError(f"train.{key}={value!r} must be a positive integer")
        if not _is_number(self.lr) or self.lr <= 0:
            raise SettingsError(f"train.optimizer.lr={self.lr!r} must be a positive number, e.g. 0.1")
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            raise SettingsError(f"train.optimizer.weight_decay={self.weight_decay!r} must be a number >= 0")
        if not _is_number(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise SettingsError(f"train.label_smoothing={self.label_smoothing!r} must be in [0, 1)")
        if self.ema_decay is not None and not (_is_number(self.ema_decay) and 0 < self.ema_decay < 1):
            raise SettingsError(f"train.ema_decay={self.ema_decay!r} must be null or in (0, 1), e.g. 0.999")
        if self.grad_clip_norm is not None and not (_is_number(self.grad_clip_norm) and self.grad_clip_norm > 0):
            raise SettingsError(f"train.grad_clip_norm={self.grad_clip_norm!r} must be null or a positive number")
        if self.target_top1 is not None and not (_is_number(self.target_top1) and 0 < self.target_top1 <= 100):
            raise SettingsError(f"train.target_top1={self.target_top1!r} must be null or a percentage in (0, 100]")
        if isinstance(self.val_per_epoch, bool) or not isinstance(self.val_per_epoch, int) or self.val_per_epoch < 1:
            raise SettingsError(f"train.val_per_epoch={self.val_per_epoch!r} must be a whole number >= 1 (e.g. 4 "
                                "validates every quarter epoch for the learning curve)")
        every = self.checkpoint_every_s
        if not _is_number(every) or every < 0:
            raise SettingsError(f"train.checkpoint_every_s={every!r} must be a number of seconds >= 0 "
                                "(0 = at every epoch's end; the last epoch and a signal always write one)")
        if self.amp not in AMP_CHOICES:
            raise SettingsError(f"train.amp={self.amp!r} is not one of: {', '.join(AMP_CHOICES)}")
        if self.channels_last not in (True, False, "auto"):
            raise SettingsError(f"train.channels_last={self.channels_last!r} must be true, false or auto")
        try:
            object.__setattr__(self, "compile", compile_mode(self.compile))  # frozen: normalised once, here
        except ValueError as err:
            raise SettingsError(str(err)) from None
        self.make_schedule()  # a schedule's own checks (milestones, fractions) run now, before anything starts

    def make_optimizer(self) -> Callable:
        """The optimizer class bound to its settings; the trainer passes parameter groups and the scaled lr."""
        kwargs = {k: v for k, v in self.optimizer.items() if k not in ("_target_", "lr")}
        return functools.partial(_locate(self.optimizer["_target_"]), **kwargs)

    def make_schedule(self) -> Callable[[float], float]:
        schedule_cls = _locate(self.scheduler["_target_"])
        kwargs = {k: v for k, v in self.scheduler.items() if k != "_target_"}
        try:
            return schedule_cls(**kwargs)
        except TypeError as err:
            known = _signature_keys(schedule_cls)
            raise SettingsError(f"train.scheduler ({self.scheduler['_target_']}) got {err}; its keys are: "
                                f"{', '.join(known)}") from err

    def train_settings(self, *, amp: str, channels_last: bool, world_size: int = 1, **run):
        """The training loop's settings (archbench.train.loop.TrainSettings) for this recipe.

        `amp` and `channels_last` are what trains (`auto` resolved); `run` holds the run's own values
        (identity, on_epoch, train_macs_per_image, progress_bar). Knobs the recipe and the loop both
        name are passed by name, so a new one needs no copy here; the values were checked in `validate`.
        """
        shared = {f.name for f in dataclasses.fields(TrainSettings)} & {f.name for f in dataclasses.fields(self)}
        return TrainSettings(**{**{name: getattr(self, name) for name in shared}, **run,
                                "amp": amp, "channels_last": channels_last},
                             make_optimizer=self.make_optimizer(), lr=self.scaled_lr(world_size),
                             weight_decay=self.weight_decay, schedule=self.make_schedule())

    def scaled_lr(self, world_size: int = 1) -> float:
        """Linear scaling from the recipe's reference batch (Goyal et al. 2017)."""
        return self.lr * self.batch_size * world_size / self.lr_reference_batch

    def identity(self) -> dict:
        # eval_batch_size, target_top1 and val_per_epoch change how a run is measured, checkpoint_every_s
        # how it is saved; none changes what it learns.
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in ("eval_batch_size", "target_top1", "budget", "checkpoint_every_s",
                                    "val_per_epoch")}
        # off and default keep the booleans they were written as, so runs recorded before modes existed
        # keep their fingerprints (and are skipped or resumed, not retrained).
        fields["compile"] = {"off": False, "default": True}.get(self.compile, self.compile)
        return {**fields, "budget": self.budget.as_dict()}

    def describe(self) -> dict:
        """The normalised recipe section of a record: what results and the report read."""
        return {**self.identity(), "eval_batch_size": self.eval_batch_size, "target_top1": self.target_top1,
                "lr": self.lr, "weight_decay": self.weight_decay, "budget_kind": self.budget.kind,
                "budget_value": self.budget.value}


# ------------------------------------------------------------------------------------------------ measure

@dataclass(frozen=True)
class MeasureSettings:
    options: dict  # keyword arguments of archbench.measure.measure_latency
    isolate: bool = False
    quiet: Any = None  # archbench.quiet.QuietSettings: how quiet the machine must be; not part of any identity

    @classmethod
    def from_config(cls, config: dict) -> "MeasureSettings":
        from archbench.measure import measure_latency  # torch: see the note on imports at the top

        known = _signature_keys(measure_latency, skip=("model", "input_shape", "device")) + ["isolate", "quiet"]
        check_keys("measure", config, known)
        config = dict(config)
        try:
            quiet = QuietSettings.from_config(config.pop("quiet", None))
        except ValueError as err:
            raise SettingsError(str(err)) from err
        return cls(options=config, isolate=parse_bool(config.pop("isolate", False), "measure.isolate"), quiet=quiet)

    def identity(self) -> dict:
        return dict(sorted(self.options.items()))


# ----------------------------------------------------------------------------------------------- identity

def run_identity(task: str, seed: int, model: ModelSettings, data: DataSettings, recipe: Recipe | None,
                 measure: MeasureSettings) -> dict:
    """Everything that can change a run's result; not where it is stored, how it is shown or how fast.

    A profile run's result is its measurement, so its measurement settings count; a training run's
    accuracy does not depend on them, so re-measuring never splits its seeds into variants.
    """
    return {
        "code": CODE_MAJOR_VERSION,
        "task": task,
        "model": model.identity(),
        "data": data.identity(),
        "recipe": recipe.identity() if recipe is not None else None,
        "measure": measure.identity() if task == "profile" else None,
        "seed": seed,
    }


def numerics_identity(identity: dict, amp: str, channels_last: bool, torch_version: str) -> dict:
    """What can change what a model learns, apart from its seed: the model, data and recipe settings, the
    precision and memory layout the run resolved to, torch's major.minor version and the code's numerics
    version. Not the machine, its threads or its load: runs of one numerics identity may pool their accuracy
    across machines and commits; their speed never does (it is the machine's)."""
    core = {"settings": {k: v for k, v in identity.items() if k not in ("seed", "task", "measure")},
            "precision": "fp32" if amp in (None, "off", "fp32") else str(amp), "channels_last": bool(channels_last),
            "torch": torch_major_minor(torch_version)}
    return {"fingerprint": fingerprint(core)[:16], "precision": core["precision"],
            "channels_last": core["channels_last"], "torch": core["torch"], "code": identity.get("code")}


def fingerprint(identity: dict) -> str:
    payload = json.dumps(identity, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def variant_name(task: str, recipe: Recipe | None, identity: dict) -> str:
    """The folder of one setting of a model, shared by its seeds: readable first, then unique.

    `standard-200ep-1a2b3c4d`: recipe, budget, and the fingerprint of the identity without the seed.
    """
    digest = fingerprint({k: v for k, v in identity.items() if k != "seed"})[:8]
    if recipe is None:
        return f"{task}-{digest}"
    return f"{recipe.name}-{recipe.budget.label()}-{digest}"


def flatten(mapping: dict, prefix: str = "") -> dict:
    """{'recipe': {'optimizer': {'lr': 0.1}}} -> {'recipe.optimizer.lr': 0.1}: for diffs and labels."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def differences(a: dict, b: dict) -> list[str]:
    """`recipe.optimizer.lr: 0.1 -> 0.05` for every flattened key whose value differs."""
    fa, fb = flatten(a), flatten(b)
    return [f"{k}: {fa.get(k)!r} -> {fb.get(k)!r}" for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
