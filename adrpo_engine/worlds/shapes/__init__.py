"""The shapes world: a text-to-image domain that runs on a laptop.

- :mod:`.data`: the seeded generator of 32x32 images of flat shapes with template captions, and the
  split of colour/shape combinations into seen and held-out ones.
- :mod:`.clip`: ``builtin:shapes-clip``, a transformers ``CLIPModel`` trained contrastively on the data.
- :mod:`.sd3`: ``builtin:shapes-sd3``, a diffusers ``StableDiffusion3Pipeline`` pre-trained by flow
  matching on cached VAE latents, with the trained CLIP's text tower as both text encoders.
- ``adrpo_engine.rewards.geneval``: the ``shapes:geneval`` verifier that reads the objects off the pixels.
"""
