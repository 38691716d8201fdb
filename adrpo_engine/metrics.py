"""Metric names: the one list that trainers log, the database stores and the studio plots."""

REWARD_MEAN = "reward/mean"
REWARD_PREFIX = "reward/"  # + a reward's name (jobs with several) or its breakdown key (reward/geneval/position)
REWARD_STD = "reward/std"
ADVANTAGE_ABS_MEAN = "advantage/abs_mean"
BETA_MEAN = "beta_eff/mean"
BETA_MIN = "beta_eff/min"
BETA_MAX = "beta_eff/max"
BETA_FRAC_NEG = "beta_eff/frac_neg"
LOSS = "loss"
POLICY_LOSS = "policy_loss"  # LLM: the PPO-clip part of the loss
FM_LOSS = "fm_loss"  # flow: the weighted flow-matching part of the loss
KL = "kl"  # LLM: mean k3 KL to the reference per completion token, over every row of the batch
W2 = "w2"  # flow: mean ||v_theta - v_ref||^2, the W2 bound's integrand
ENTROPY = "entropy"  # LLM: mean token entropy of the policy on its completions
DIVERSITY = "diversity"
GRAD_NORM = "grad_norm"
LR = "lr"
STEP_TIME = "step_time"
SAMPLES_PER_S = "samples_per_s"
TOKENS_PER_S = "tokens_per_s"  # LLM only
GPU_PEAK_GIB = "gpu/peak_gib"  # CUDA jobs only: peak memory allocated during the step, the largest over the job's GPUs

# LLM extras (logged beside the DESIGN set; TRL 1.16's names where TRL has the metric)
KL_BETA_NONZERO = "kl/beta_nonzero"  # mean k3 KL per token over the rows with beta_i != 0 only
KL_REF_FRAC = "kl/ref_frac"  # fraction of rows whose reference log-probs were computed this step
FRAC_REWARD_ZERO_STD = "frac_reward_zero_std"  # prompt groups whose rewards are all equal (no signal)
CLIP_LOW_MEAN = "clip_ratio/low_mean"  # tokens with rho < 1 - eps_low and A < 0 (sequences for GSPO)
CLIP_HIGH_MEAN = "clip_ratio/high_mean"  # tokens with rho > 1 + eps_high and A > 0
CLIP_REGION_MEAN = "clip_ratio/region_mean"  # either of the two
CLIP_LOW_MIN = "clip_ratio/low_min"  # min over sequences of their low-clipped fraction
CLIP_HIGH_MAX = "clip_ratio/high_max"  # max over sequences of their high-clipped fraction
LLM_EXTRAS = (
    KL_BETA_NONZERO,
    KL_REF_FRAC,
    FRAC_REWARD_ZERO_STD,
    CLIP_LOW_MEAN,
    CLIP_HIGH_MEAN,
    CLIP_REGION_MEAN,
    CLIP_LOW_MIN,
    CLIP_HIGH_MAX,
)

COMMON = (
    REWARD_MEAN,
    REWARD_STD,
    ADVANTAGE_ABS_MEAN,
    BETA_MEAN,
    BETA_MIN,
    BETA_MAX,
    BETA_FRAC_NEG,
    LOSS,
    DIVERSITY,
    GRAD_NORM,
    LR,
    STEP_TIME,
    SAMPLES_PER_S,
)
LLM = COMMON + (POLICY_LOSS, KL, ENTROPY, TOKENS_PER_S)
FLOW = COMMON + (FM_LOSS, W2)

# What the studio draws by default, in this order; each kind names its divergence and its metrics in
# ``adrpo_engine.kinds`` (KindSpec.divergence, .metric_names).
PLOTTED = (REWARD_MEAN, KL, W2, BETA_MEAN, BETA_MIN, BETA_MAX, ENTROPY, DIVERSITY, LOSS)

# Diffusion-DPO (flow jobs with algorithm dpo) logs these besides FLOW.
DPO_MARGIN = "dpo/margin"  # mean -((err_theta_w - err_ref_w) - (err_theta_l - err_ref_l)): the winner's margin
DPO_ACCURACY = "dpo/implicit_acc"  # fraction of pairs whose margin is positive
DPO_WINNER_REWARD = "dpo/winner_reward"
DPO_LOSER_REWARD = "dpo/loser_reward"
DPO_PAIRS = "dpo/pairs"  # pairs in the pool the step trains on
DPO = FLOW + (DPO_MARGIN, DPO_ACCURACY, DPO_WINNER_REWARD, DPO_LOSER_REWARD, DPO_PAIRS)


MAX_METRIC_NAME = 64  # the store's metric name column


def reward_component_names(reward_names: list[str] | tuple[str, ...]) -> list[str]:
    """The per-reward metric of each row of a job's ``rewards`` (logged every step when there are several):
    ``reward/<name>``, and ``reward/<name>#2``, ``#3``... for a reward listed again (with other options)."""
    seen: dict[str, int] = {}
    labels = []
    for name in reward_names:
        seen[name] = seen.get(name, 0) + 1
        suffix = "" if seen[name] == 1 else f"#{seen[name]}"
        # The store keeps metric names of up to 64 characters: a long 'package.module:function' or URL keeps its end.
        room = MAX_METRIC_NAME - len(REWARD_PREFIX) - len(suffix)
        shown = name if len(name) <= room else "~" + name[-(room - 1) :]
        labels.append(f"{REWARD_PREFIX}{shown}{suffix}")
    return labels


def is_reward_component(name: str) -> bool:
    """A per-reward metric (``reward/<name>``), not the summed reward's own ``reward/mean`` or ``reward/std``."""
    return name.startswith(REWARD_PREFIX) and name not in (REWARD_MEAN, REWARD_STD)
