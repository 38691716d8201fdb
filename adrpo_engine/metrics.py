"""Metric names: the one list that trainers log, the database stores and the studio plots."""

REWARD_MEAN = "reward/mean"
REWARD_STD = "reward/std"
ADVANTAGE_ABS_MEAN = "advantage/abs_mean"
BETA_MEAN = "beta_eff/mean"
BETA_MIN = "beta_eff/min"
BETA_MAX = "beta_eff/max"
BETA_FRAC_NEG = "beta_eff/frac_neg"
LOSS = "loss"
POLICY_LOSS = "policy_loss"  # LLM: the PPO-clip part of the loss
FM_LOSS = "fm_loss"  # flow: the weighted flow-matching part of the loss
KL = "kl"  # LLM: mean k3 KL to the reference per completion token
W2 = "w2"  # flow: mean ||v_theta - v_ref||^2, the W2 bound's integrand
ENTROPY = "entropy"  # LLM: mean token entropy of the policy on its completions
DIVERSITY = "diversity"
GRAD_NORM = "grad_norm"
LR = "lr"
STEP_TIME = "step_time"
SAMPLES_PER_S = "samples_per_s"
TOKENS_PER_S = "tokens_per_s"  # LLM only

COMMON = (
    REWARD_MEAN, REWARD_STD, ADVANTAGE_ABS_MEAN, BETA_MEAN, BETA_MIN, BETA_MAX, BETA_FRAC_NEG,
    LOSS, DIVERSITY, GRAD_NORM, LR, STEP_TIME, SAMPLES_PER_S,
)
LLM = COMMON + (POLICY_LOSS, KL, ENTROPY, TOKENS_PER_S)
FLOW = COMMON + (FM_LOSS, W2)

# What the studio draws by default, in this order; each kind names its divergence and its metrics in
# ``adrpo_engine.kinds`` (KindSpec.divergence, .metric_names).
PLOTTED = (REWARD_MEAN, KL, W2, BETA_MEAN, BETA_MIN, BETA_MAX, ENTROPY, DIVERSITY, LOSS)


REWARD_COMPONENT_PREFIX = "reward/"
MAX_METRIC_NAME = 64


def reward_component_names(reward_names: list[str] | tuple[str, ...]) -> list[str]:
    """The per-reward metric of each row of a job's ``rewards`` (logged every step when there are several):
    ``reward/<name>``, and ``reward/<name>#2``, ``#3``... for a reward listed again (with other options)."""
    seen: dict[str, int] = {}
    labels = []
    for name in reward_names:
        seen[name] = seen.get(name, 0) + 1
        suffix = "" if seen[name] == 1 else f"#{seen[name]}"
        # The store keeps metric names of up to 64 characters: a long 'package.module:function' keeps its end.
        room = MAX_METRIC_NAME - len(REWARD_COMPONENT_PREFIX) - len(suffix)
        shown = name if len(name) <= room else "~" + name[-(room - 1):]
        labels.append(f"{REWARD_COMPONENT_PREFIX}{shown}{suffix}")
    return labels


def is_reward_component(name: str) -> bool:
    """A per-reward metric (``reward/<name>``), not the summed reward's own ``reward/mean`` or ``reward/std``."""
    return name.startswith(REWARD_COMPONENT_PREFIX) and name not in (REWARD_MEAN, REWARD_STD)

