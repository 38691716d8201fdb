"""Built-in prompt lists for flow (text-to-image) presets: ``prompts.file: builtin:t2i-prompts``.

``adrpo_engine.kinds`` registers them by name (``PromptSource.rows`` points here).

``t2i-prompts`` is a short, varied list written for this project (objects, animals, scenes, counting,
colours and styles), so a CLIP-score job has prompts without a download. ``digits`` lists the prompts
the built-in digits model understands.
"""

from __future__ import annotations

T2I_PROMPTS = [
    "a red apple on a wooden table",
    "a photo of a cat sleeping on a windowsill",
    "a golden retriever running on a beach at sunset",
    "a bowl of ramen with a soft-boiled egg",
    "an astronaut riding a horse, oil painting",
    "a lighthouse on a rocky cliff during a storm",
    "three blue cups on a white shelf",
    "a watercolor painting of a fox in a snowy forest",
    "a vintage red bicycle leaning against a brick wall",
    "a futuristic city skyline at night with neon lights",
    "a close-up photo of a honeybee on a sunflower",
    "a cozy library with tall bookshelves and a fireplace",
    "a green frog wearing a tiny crown",
    "a steaming cup of coffee next to an open book",
    "a mountain lake reflecting snowy peaks at dawn",
    "a pixel art castle on a floating island",
    "two penguins holding hands on an iceberg",
    "a hot air balloon over a field of lavender",
    "a portrait of an old fisherman, charcoal drawing",
    "a yellow school bus parked in front of a school",
    "a koala eating eucalyptus leaves",
    "a chessboard with glass pieces in soft light",
    "a bowl of fresh strawberries and blueberries",
    "a wooden cabin in a pine forest under the stars",
    "a robot painting a picture of a sunflower",
    "an owl perched on a branch under a full moon",
    "a plate of sushi on a black slate board",
    "a sailboat on a calm sea at sunrise",
    "a street market in the rain with colorful umbrellas",
    "a white horse galloping through shallow water",
    "a stack of pancakes with maple syrup and butter",
    "a snow-covered village with warm lit windows",
    "an origami crane made of newspaper",
    "a turtle swimming over a coral reef",
    "a glass teapot with blooming tea inside",
    "a desert with tall cacti and a purple sky",
    "a small dog wearing a raincoat in the city",
    "an ancient stone bridge over a misty river",
    "a bouquet of tulips in a blue vase",
    "a steam train crossing a viaduct in autumn",
]

DIGIT_PROMPTS = ["any digit"] + [f"digit {k}" for k in range(10)]


def t2i_prompts() -> list[dict[str, str]]:
    return [{"prompt": text} for text in T2I_PROMPTS]


def digit_prompts() -> list[dict[str, str]]:
    return [{"prompt": text} for text in DIGIT_PROMPTS]
