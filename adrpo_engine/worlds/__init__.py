"""Built-in worlds: CPU-sized domains the project generates, trains and verifies itself (DESIGN section 8)."""
