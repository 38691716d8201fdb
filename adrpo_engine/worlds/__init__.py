"""Built-in worlds: CPU-sized domains the project generates, trains and verifies itself (shapes:
text-to-image, audio: audio question answering); docs/flow.md and docs/audio.md describe them."""
