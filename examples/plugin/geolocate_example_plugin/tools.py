"""A custom tool: how much of the photo's top third is sky, and its mean colour."""

from __future__ import annotations

from geolocate.tools.base import Tool, ToolContext, ToolInput, ToolOutput


class SkyInput(ToolInput):
    """No arguments: the tool reads the photo."""


class SkyOutput(ToolOutput):
    sky_fraction: float
    """Share (0..1) of the top third's pixels that are bright and blue-grey."""
    mean_rgb: tuple[int, int, int]

    def summary(self) -> str:
        return f"{self.sky_fraction:.0%} of the top third looks like sky; mean colour {self.mean_rgb}"


class SkyTool(Tool):
    """Sky share of the top third (a crude cue of an open street versus a narrow lane or indoors)."""

    name = "sky"
    description = "How much of the top third of the photo is sky (0..1), and its mean colour. No arguments."
    Input = SkyInput
    Output = SkyOutput
    timeout_s = 10.0

    def run(self, args: SkyInput, ctx: ToolContext) -> SkyOutput:
        im = ctx.image.image
        top = im.crop((0, 0, im.width, max(1, im.height // 3))).convert("RGB").resize((64, 32))
        px = list(top.getdata())
        sky = sum(1 for r, g, b in px if b >= r and b >= g - 10 and (r + g + b) / 3 > 120)
        mean = tuple(round(sum(p[i] for p in px) / len(px)) for i in range(3))
        return SkyOutput(sky_fraction=round(sky / len(px), 3), mean_rgb=mean)
