"""Model loaders (causal LMs, SD3 pipelines) and the built-in demo models the project builds itself.

Which built-in models exist, and for which kind of job, is listed in ``adrpo_engine.kinds``.
"""
