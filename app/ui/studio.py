"""The studio: the five tabs in one gr.Blocks. Layout lives in one module per tab (``launch.py``,
``jobs.py``, ``detail.py``, ``compare.py``, ``runs.py``), their events in ``events/<tab>.py``, and the
events that join tabs in ``events/cross_tab.py``."""

from __future__ import annotations

import gradio as gr

from .compare import build_compare_tab
from .detail import build_detail_tab
from .events.compare import wire_compare_tab
from .events.cross_tab import StudioTabs, wire_cross_tab
from .events.detail import wire_detail_tab
from .events.jobs import wire_jobs_tab
from .events.launch import wire_launch_tab, wire_reward_try
from .events.runs import wire_runs_tab
from .jobs import build_jobs_tab
from .launch import build_launch_tab
from .runs import build_runs_tab
from .service import StudioService
from .sweeps import build_sweeps_tab, wire_sweeps_tab

TITLE = "ADRPO Studio"
CSS = """
#launch-errors { min-height: 2em; }
.field-error { outline: 2px solid #dc2626 !important; border-radius: 6px; }
.field-error [data-testid="block-info"], .field-error .info { color: #b91c1c !important; font-weight: 600; }
.sample-cards img { image-rendering: auto; }
"""
HEADER = (
    "# ADRPO Studio\n"
    "RL fine-tuning of generative models with **Adaptive Divergence Regularized Policy Optimization**: "
    "each sample's pull towards the reference is β₀ − A (its clipped advantage). "
    "Launch a job, watch it train, compare with the reference, download the LoRA adapter."
)


def user_reward_modules(service: StudioService) -> tuple[str, ...]:
    """The user reward modules the service opens to studio jobs (worker.policy; none by default)."""
    policy = getattr(service, "policy", None)
    return tuple(getattr(policy, "reward_modules", ()) or ())


def build_studio(service: StudioService) -> gr.Blocks:
    with gr.Blocks(title=TITLE, analytics_enabled=False) as blocks:
        gr.Markdown(HEADER)
        items: dict[str, gr.Tab] = {}
        with gr.Tabs(selected="launch", elem_id="studio-tabs") as tabs:
            with gr.Tab("Launch", id="launch", elem_id="tab-launch") as items["launch"]:
                launch = build_launch_tab(user_reward_modules(service))
            with gr.Tab("Jobs", id="jobs", elem_id="tab-jobs") as items["jobs"]:
                jobs = build_jobs_tab()
            with gr.Tab("Job detail", id="detail", elem_id="tab-detail") as items["detail"]:
                detail = build_detail_tab(service)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare") as items["compare"]:
                compare = build_compare_tab()
            with gr.Tab("Runs", id="runs", elem_id="tab-runs") as items["runs"]:
                runs = build_runs_tab()
            with gr.Tab("Sweeps", id="sweeps", elem_id="tab-sweeps") as items["sweeps"]:
                sweeps = build_sweeps_tab()
        wire_launch_tab(launch)
        wire_reward_try(launch, service)
        wire_jobs_tab(jobs, service)
        wire_detail_tab(detail, service)
        wire_compare_tab(compare, service)
        wire_runs_tab(runs, service)
        wire_sweeps_tab(sweeps, service, blocks)
        wire_cross_tab(StudioTabs(tabs, items, launch, jobs, detail, compare, runs), service, blocks)
    return blocks
