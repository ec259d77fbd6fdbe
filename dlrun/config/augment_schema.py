"""The config's `data.augment` section: random changes to the training images, drawn anew for every
batch (Keras' image preprocessing layers; engine/augment.py applies them). Part of the config contract
(see schema.py). Only the training stream is augmented: validation, test, evaluate and predict never are."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from dlrun.config.section import Fraction0To, Section

FLIPS = ("horizontal", "vertical", "horizontal_and_vertical")
Rotation = Fraction0To(1, "rotation", "of a full turn (0.1 rotates by up to 36 degrees either way)")
Zoom = Fraction0To(1, "zoom", "of the height and width (0.1 zooms in or out by up to 10 %)", exclusive=True)
Translation = Fraction0To(1, "translation", "of the height and width (0.1 shifts by up to 10 % either way)")
Contrast = Fraction0To(1, "contrast", "(0.2 multiplies each image's contrast by 0.8 to 1.2)")


class AugmentConfig(Section):
    """Random flips, rotations, zooms, shifts and contrast changes of the training images, applied in this
    order to every training batch (after pixels are scaled), drawn from the run's seed."""

    flip: Literal[FLIPS] | None = Field(  # type: ignore[valid-type]
        default=None, description="Mirror half the images, drawn at random: horizontal (left-right), vertical "
        "(top-bottom) or horizontal_and_vertical (both at once: a half turn; Keras' RandomFlip).")
    rotation: Rotation | None = Field(  # type: ignore[valid-type]
        default=None, description="Rotate by up to this fraction of a full turn either way: 0.1 is up to "
        "36 degrees (Keras' RandomRotation factor); at most 1.")
    zoom: Zoom | None = Field(  # type: ignore[valid-type]
        default=None, description="Zoom in or out by up to this fraction of the height and width: 0.1 is "
        "90 % to 110 % (Keras' RandomZoom height_factor, the aspect kept); below 1.")
    translation: Translation | None = Field(  # type: ignore[valid-type]
        default=None, description="Shift by up to this fraction of the height and of the width either way "
        "(Keras' RandomTranslation); at most 1.")
    contrast: Contrast | None = Field(  # type: ignore[valid-type]
        default=None, description="Multiply each image's contrast (its distance from its mean) by a factor "
        "between 1 - contrast and 1 + contrast, clipped to the pixel range (Keras' RandomContrast); at most 1.")

    def active(self) -> dict[str, Any]:
        """The changes that do something, in the order they are applied: {flip: mode, rotation: 0.1, ...};
        a missing or 0 value is left out (empty: no augmentation)."""
        return {key: value for key, value in self.model_dump().items() if value}
