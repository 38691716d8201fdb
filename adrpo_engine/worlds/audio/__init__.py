"""The audio world: an audio-language domain that runs on a laptop (DESIGN section 8, docs/audio.md).

- :mod:`.signals`: seeded clips of tones, beeps and noise bursts with multiple-choice questions whose
  answers follow from the signal.
- :mod:`.model`: ``builtin:tiny-audio-lm``, a miniature ``Qwen2AudioForConditionalGeneration`` with a
  locally trained tokenizer, supervised-pre-trained on part of the questions.
- :mod:`.prompts`: the ``builtin:audio-tones`` (training) and ``builtin:audio-tones-heldout`` sources.
- ``adrpo_engine.rewards.choice``: the ``mc_answer`` / ``mc_format`` rewards.
"""
