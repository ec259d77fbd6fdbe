"""The config's optimizer section and the learning-rate rules: Keras-2 decay, schedules, and
(in `train:`) the plateau rule. Part of the config contract (see schema.py); no TensorFlow here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_serializer

from dlrun.config.section import Float, Fraction, Int, PosFloat, PosInt, Section

OptimizerName = Literal["sgd", "adam", "rmsprop", "adagrad", "adamw", "nadam"]
ScheduleName = Literal["exponential", "cosine", "piecewise", "inverse_time"]
# the parameters each schedule takes besides its name, (required, optional); optimizer.lr is where every one starts
SCHEDULE_PARAMS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "exponential": (frozenset({"decay_steps", "decay_rate"}), frozenset({"staircase"})),
    "inverse_time": (frozenset({"decay_steps", "decay_rate"}), frozenset({"staircase"})),
    "cosine": (frozenset({"decay_steps"}), frozenset({"alpha", "warmup_steps", "warmup_target"})),
    "piecewise": (frozenset({"boundaries", "values"}), frozenset()),
}


class ScheduleConfig(Section):
    """A Keras learning-rate schedule over optimizer steps (batches); `optimizer.lr` is where it starts."""

    name: ScheduleName = Field(description="exponential (lr * decay_rate^(step/decay_steps)), cosine, piecewise "
                               "(constant values between step boundaries) or inverse_time (lr / (1 + decay_rate * "
                               "step/decay_steps)).")
    decay_steps: PosInt | None = Field(default=None, description="exponential, inverse_time, cosine: the steps "
                                       "(batches) one decay period lasts.")
    decay_rate: PosFloat | None = Field(default=None, description="exponential, inverse_time: the decay rate.")
    staircase: bool = Field(default=False, description="exponential, inverse_time: decay in whole periods.")
    alpha: Float = Field(default=0.0, ge=0, le=1, description="cosine: the final lr as a fraction of optimizer.lr.")
    warmup_steps: Int = Field(default=0, ge=0, description="cosine: linear warm-up steps before the decay.")
    warmup_target: PosFloat | None = Field(default=None, description="cosine: the lr the warm-up reaches "
                                           "(the decay starts from it).")
    boundaries: list[PosInt] | None = Field(default=None, description="piecewise: the steps where the lr changes, "
                                            "increasing.")
    values: list[PosFloat] | None = Field(default=None, description="piecewise: the lr before the first boundary "
                                          "(= optimizer.lr), between boundaries, and after the last.")

    @model_serializer(mode="wrap")
    def _only_what_the_schedule_takes(self, handler: Any) -> Any:
        # the other kinds' defaults are not part of this schedule: written, they would read back as given
        # (checks_train.check_schedule refuses them), so a written config would not load again
        required, optional = SCHEDULE_PARAMS[self.name]
        return {key: value for key, value in handler(self).items() if key in {"name", *required, *optional}}


class OptimizerConfig(Section):
    """The optimizer and its learning rate."""

    name: OptimizerName = Field(default="sgd", description="The Keras optimizer.")
    lr: PosFloat = Field(default=0.01, description="Learning rate.")
    momentum: Float = Field(default=0.0, ge=0, lt=1, description="sgd/rmsprop momentum.")
    nesterov: bool = Field(default=False, description="sgd: Nesterov momentum.")
    clipnorm: PosFloat | None = Field(default=None, description="Clip each gradient to this norm.")
    decay: Float = Field(default=0.0, ge=0, description="Keras-2 decay: lr / (1 + decay * step), the course's "
                         "SGD(lr, decay=1e-6) (0: none).")
    schedule: ScheduleConfig | None = Field(default=None, description="A learning-rate schedule, e.g. "
                                            "{name: exponential, decay_steps: 100, decay_rate: 0.9}.")
    weight_decay: PosFloat | None = Field(default=None, description="Decoupled weight decay (adamw: default "
                                          "0.004; any optimizer).")

    @field_validator("lr", mode="before")
    @classmethod
    def _int_lr_is_float(cls, value: Any) -> Any:
        # Keras 3 optimizers reject an int learning rate; `lr: 1` in YAML should just work.
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ReduceLROnPlateau(Section):
    """Cut the learning rate when a validation metric stops improving (Keras' ReduceLROnPlateau rule)."""

    monitor: str = Field(default="val_loss", description="The validation metric to watch (val_loss, "
                         "val_accuracy, val_mae).")
    factor: Fraction = Field(default=0.1, description="Multiply the lr by this at a plateau.")
    patience: Int = Field(default=5, ge=0, description="Epochs without improvement before the lr is cut.")
    min_delta: Float = Field(default=1e-4, ge=0, description="The least change that counts as improvement.")
    min_lr: Float = Field(default=0.0, ge=0, description="The lr is never cut below this.")
