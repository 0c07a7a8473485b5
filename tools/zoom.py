"""The ``zoom`` tool: crop a region of the photo and show it to the model at full resolution.

A VLM sees the whole photo shrunk to its pixel budget; a sign or a licence plate may then be a few
pixels wide. Zooming crops the original pixels (as GeoVista does) and the crop is shown to the model
as a new image in the tool response. Crops are evidence: their box and hash are in the trajectory.
"""

from __future__ import annotations

import hashlib

from PIL import Image
from pydantic import Field

from geolocate.tools.base import Tool, ToolContext, ToolInput, ToolOutput
from geolocate.tools.errors import ToolInputError

MIN_CROP_PX = 16


class ZoomInput(ToolInput):
    box: tuple[float, float, float, float] = Field(
        description="region (x0, y0, x1, y1) as fractions 0..1 of width and height, x0 < x1, y0 < y1"
    )
    medium: str | None = Field(
        None,
        description="in a case of several media: the photo or frame to crop (m1, m2@4.0s); default the first",
    )


class ZoomOutput(ToolOutput):
    box_px: tuple[int, int, int, int] = Field(
        description="crop in pixels of the original photo (left, top, right, bottom)"
    )
    width: int
    height: int
    sha256: str
    medium: str | None = Field(None, exclude_if=lambda v: v is None, description="the photo or frame cropped")

    def summary(self) -> str:
        of = f"frame/photo {self.medium}" if self.medium else "the photo"
        return f"crop {self.box_px} of {of} ({self.width}x{self.height} px) is shown as a new image"


class ZoomTool(Tool):
    name = "zoom"
    description = (
        "Crop a region of the photo (fractions of width and height) and look at it at full resolution: "
        "for small text, signs, plates, road markings. The crop is shown to you as a new image."
    )
    Input = ZoomInput
    Output = ZoomOutput
    timeout_s = 10.0

    def run(self, args: ZoomInput, ctx: ToolContext) -> ZoomOutput:
        x0, y0, x1, y1 = args.box
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ToolInputError(
                f"bad box {args.box}", hint="use fractions with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1"
            )
        im = ctx.image_by_id(args.medium).image
        w, h = im.size
        box = (
            int(x0 * w),
            int(y0 * h),
            max(int(x0 * w) + 1, round(x1 * w)),
            max(int(y0 * h) + 1, round(y1 * h)),
        )
        if box[2] - box[0] < MIN_CROP_PX or box[3] - box[1] < MIN_CROP_PX:
            raise ToolInputError(
                f"crop {box} is smaller than {MIN_CROP_PX} px", hint="choose a larger region"
            )
        crop = im.crop(box)
        return ZoomOutput(
            box_px=box,
            width=crop.width,
            height=crop.height,
            sha256=hashlib.sha256(crop.tobytes()).hexdigest(),
            medium=args.medium,
        )

    def artifact(self, output: dict, ctx: ToolContext) -> Image.Image:
        """The crop, from the original pixels (``box_px`` of the output)."""
        return ctx.image_by_id(output.get("medium")).image.crop(tuple(output["box_px"]))
