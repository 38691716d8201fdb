"""`adrpo train` and `adrpo presets`: the engine's command line (the service adds serve/worker/db)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import metrics as M
from .config import ConfigError, JobConfig, validate_config
from .config_io import apply_overrides, load_yaml, parse_override
from .distributed import launched_world_size
from .kinds import get_kind
from .launch import accelerate_command
from .presets import PRESETS, get_preset
from .progress import TRAINING, NullSink, Phase, Sample

app = typer.Typer(add_completion=False, no_args_is_help=True, help="ADRPO: adaptive-divergence RL fine-tuning.")
console = Console()
errors = Console(stderr=True)

EXIT_CONFIG = 2


class ConsoleSink(NullSink):
    """A rich progress bar with the latest reward and divergence, and the logged samples printed."""

    def __init__(self, progress: Progress, kind: str) -> None:
        self.progress = progress
        self.divergence = get_kind(kind).divergence
        self.task = None
        self.build_task = None
        self.build_label = ""
        self.phase: str | None = None

    def on_phase(self, phase: Phase) -> None:
        """A line when the run moves to another phase; a progress bar while a built-in model is built."""
        if phase.name != self.phase and phase.name != TRAINING:
            self.progress.console.print(f"[cyan]{escape(phase.describe())}[/]")
        self.phase = phase.name
        if phase.total:
            label = escape(phase.detail.rsplit(" step ", 1)[0])
            if self.build_task is None or self.build_label != label:
                self.build_task = self.progress.add_task(label, total=phase.total, info="")
                self.build_label = label
            self.progress.update(self.build_task, completed=phase.done or 0)

    def on_start(self, total_steps: int, start_step: int) -> None:
        self.task = self.progress.add_task("training", total=total_steps, completed=start_step, info="")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        divergence = self.divergence
        info = (
            f"reward {metrics.get(M.REWARD_MEAN, float('nan')):.3f}  "
            f"{divergence} {metrics.get(divergence, float('nan')):.4f}  "
            f"beta {metrics.get(M.BETA_MEAN, float('nan')):.3f}"
        )
        if self.task is not None:
            self.progress.update(self.task, completed=step, info=info)

    def on_samples(self, step: int, samples: list[Sample]) -> None:
        for sample in samples[:4]:
            shown = sample.text if sample.text is not None else sample.image_path
            reward = "" if sample.reward is None else f" [reward {sample.reward:.3f}]"
            # escape(): "[reward 0.5]" and brackets in generated text are not rich markup
            self.progress.console.print(
                f"[dim]step {step} {sample.role}:[/] " + escape(f"{sample.prompt!r} -> {shown!r}{reward}")
            )

    def on_log(self, message: str) -> None:
        self.progress.console.print(f"[yellow]{escape(message)}[/]")


def resolve_job_config(config: Path | None, preset: str | None, assignments: list[str]) -> JobConfig:
    """--config or --preset, then --set overrides; raises ConfigError with a readable message."""
    if (config is None) == (preset is None):
        raise ConfigError("give exactly one of --config FILE or --preset NAME")
    base = load_yaml(config) if config is not None else get_preset(str(preset)).config
    if not isinstance(base, dict):
        raise ConfigError(f"config file {str(config)!r}: expected a mapping at the top level")
    overrides = dict(parse_override(item) for item in assignments)
    job = validate_config(apply_overrides(base, overrides))
    from .rewards.schema import check_reward_rows

    check_reward_rows(job.rewards, job.kind)  # the CLI runs the user's own functions: allowed
    check_reward_rows(job.eval.rewards, job.kind, section="eval.rewards")
    return job


@app.command()
def train(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Job config YAML.")] = None,
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="A preset name (see `adrpo presets`).")] = None,
    assignments: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override KEY=VALUE (dotted keys).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default runs/NAME).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Ignore checkpoints already in the run directory.")] = False,
) -> None:
    """Train (or resume) a job; writes config.yaml, metrics.jsonl and checkpoints/ to the run directory."""
    try:
        job = resolve_job_config(config, preset, assignments or [])
    except ConfigError as error:
        errors.print(f"[red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    for note in job.advisories():
        errors.print(f"[yellow]warning:[/] {note}", highlight=False)
    if job.resources.processes > 1 and launched_world_size() == 1:
        # Start the ranks through `accelerate launch`, each running this same command.
        command = accelerate_command(
            job.resources.processes, "adrpo_engine.cli", sys.argv[1:], accelerate_config=job.resources.accelerate_config
        )
        raise typer.Exit(subprocess.call(command))

    from .runner import train as run_training  # heavy imports only once the config is valid
    from .trainers.base import TrainingError

    run_dir = out or Path("runs") / job.name
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        try:
            result = run_training(job, run_dir, ConsoleSink(progress, job.kind), resume=not fresh)
        except TrainingError as error:
            errors.print(f"[red]training failed:[/] {error}", highlight=False)
            raise typer.Exit(1) from None
        except ConfigError as error:  # found while loading: a model, reward or prompt source that does not load
            errors.print(f"[red]error:[/] {error}", highlight=False)
            raise typer.Exit(EXIT_CONFIG) from None
    if int(os.environ.get("RANK", "0")) != 0:
        return  # rank 0 reports for the group
    before = result.first_metrics.get(M.REWARD_MEAN)
    after = result.last_metrics.get(M.REWARD_MEAN)
    console.print(f"[bold]{result.status}[/] after step {result.last_step} of {job.steps}")
    if before is not None and after is not None:
        console.print(f"reward/mean: first step {before:.4f} -> last step {after:.4f}")
    console.print(f"adapter: {result.checkpoint}")
    console.print(f"metrics: {run_dir / 'metrics.jsonl'}")


def parse_seeds(first: str, rest: list[str]) -> list[int]:
    """``--seeds 0 1 2`` (the extra words arrive as arguments) or ``--seeds 0,1,2``."""
    words = [part for item in [first, *rest] for part in item.split(",") if part.strip()]
    try:
        return [int(word) for word in words]
    except ValueError:
        raise ConfigError(f"--seeds: expected integers such as --seeds 0 1 2 (got {' '.join(words)!r})") from None


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def sweep(
    ctx: typer.Context,
    grid: Annotated[list[str], typer.Option("--grid", "-g", help="KEY=V1,V2,... (repeat for more keys).")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Base job config YAML.")] = None,
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="Base preset.")] = None,
    assignments: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override KEY=VALUE for every job.")
    ] = None,
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds: --seeds 0 1 2 (or 0,1,2).")] = "0",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Sweep directory (default runs/sweep-NAME).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and list the jobs, train nothing.")] = False,
) -> None:
    """Train a grid of jobs times seeds one after another, evaluate each on held-out prompts with fixed
    noise, and write sweep.json, points.csv and frontier.png (one point per grid point, mean +- std)."""
    from .sweep import expand_sweep, parse_grid_option

    try:
        seed_list = parse_seeds(seeds, list(ctx.args))
        if config is not None and preset is None:
            base = load_yaml(config)
        elif preset is not None and config is None:
            base = get_preset(preset).config
        else:
            raise ConfigError("give exactly one of --config FILE or --preset NAME")
        overrides = dict(parse_override(item) for item in assignments or [])
        parsed = dict(parse_grid_option(option) for option in grid)
        if len(parsed) != len(grid):
            raise ConfigError("--grid: a key is given twice")
        jobs = expand_sweep(base, parsed, seed_list, overrides, extra={"eval.on_finish": True})
    except ConfigError as error:
        errors.print(f"[red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    out_dir = out or Path("runs") / f"sweep-{jobs[0].config.name.split('-')[0]}"
    console.print(f"{len(jobs)} jobs ({len(jobs) // len(seed_list)} grid points x {len(seed_list)} seeds) -> {out_dir}")
    if dry_run:
        for job in jobs:
            console.print(f"  {job.config.name}", highlight=False)
        return

    from .evaluation import summary_line
    from .sweep_runner import run_sweep
    from .trainers.base import TrainingError

    def report(job, point, seconds):
        console.print(
            f"[{job.index + 1}/{len(jobs)}] {job.config.name} ({seconds:.0f} s): "
            + escape(summary_line(point, job.config.kind)),
            highlight=False,
        )

    spec = {
        "base": str(config) if config else preset,
        "grid": parsed,
        "seeds": seed_list,
        "overrides": overrides,
        "title": f"{preset or config}: " + ", ".join(f"{k} in {v}" for k, v in parsed.items()) + f", seeds {seed_list}",
    }
    try:
        record = run_sweep(jobs, out_dir, list(parsed), spec, on_done=report)
    except TrainingError as error:
        errors.print(f"[red]training failed:[/] {error}", highlight=False)
        raise typer.Exit(1) from None
    for point in record["summary"]["points"]:
        flags = point["frontier"]
        console.print(
            f"{point['method']:6s} {point['params']}: reward {point['mean']['reward/mean']:.4f} "
            f"+- {point['std']['reward/mean']:.4f} (n={point['seeds']})  frontier: "
            f"diversity {flags['diversity']['on_method_frontier']}, "
            f"divergence {flags['divergence']['on_method_frontier']}",
            highlight=False,
        )
    console.print(f"wrote {out_dir / 'sweep.json'}, points.csv, frontier.png")


@app.command("export")
def export(
    run: Annotated[Path, typer.Argument(help="A run directory (runs/NAME, or a job's folder under the artifacts).")],
    merged: Annotated[
        Path | None, typer.Option("--merged", help="LLM: folder for the merged model (new or empty).")
    ] = None,
    comfyui: Annotated[
        Path | None, typer.Option("--comfyui", help="SD3: a .safetensors LoRA file in ComfyUI's key layout.")
    ] = None,
    checkpoint: Annotated[
        int | None, typer.Option("--checkpoint", help="Checkpoint step (default: the newest).")
    ] = None,
) -> None:
    """Export a run's adapter: --merged OUT (an LLM merged into its base weights: a plain transformers
    folder for vLLM or from_pretrained) or --comfyui OUT.safetensors (an SD3 LoRA for ComfyUI)."""
    from .export import export_comfyui_lora, export_merged_llm

    try:
        if merged is not None and comfyui is None:
            console.print(f"merged model: {export_merged_llm(run, merged, checkpoint)}")
        elif comfyui is not None and merged is None:
            console.print(f"ComfyUI LoRA: {export_comfyui_lora(run, comfyui, checkpoint)}")
        else:
            raise ConfigError("give exactly one of --merged FOLDER or --comfyui FILE.safetensors")
    except ConfigError as error:
        errors.print(f"[red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None


@app.command("presets")
def list_presets() -> None:
    """List the presets, one line each (demo presets run on a CPU with built-in models)."""
    width = max(len(name) for name in PRESETS)
    for name, preset in PRESETS.items():
        tag = "demo" if preset.demo else "gpu "
        console.print(f"{name:<{width}}  {tag}  {preset.summary}", highlight=False, soft_wrap=True)


rewards_app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    help="The registered rewards with their options; `adrpo rewards try` scores samples.",
)
app.add_typer(rewards_app, name="rewards")


@rewards_app.callback()
def list_rewards(ctx: typer.Context) -> None:
    """List the registered rewards and their options (use them by name in `rewards:`; or 'module:function')."""
    if ctx.invoked_subcommand is not None:
        return
    from .rewards import NEEDS, available_rewards
    from .rewards.schema import describe_options, model_suggestions

    for reward in sorted(available_rewards(), key=lambda r: (r.kind, r.needs, r.name)):
        console.print(
            f"[bold]{escape(reward.name)}[/]  {reward.kind}, {NEEDS[reward.needs].lower()}: {escape(reward.summary)}",
            highlight=False,
            soft_wrap=True,
        )
        if reward.takes_model:
            default = reward.default_model or "required"
            console.print(
                f"    model: {escape(default)} (e.g. {escape(', '.join(model_suggestions(reward)))})",
                highlight=False,
                soft_wrap=True,
            )
        for field in describe_options(reward):
            console.print(f"    {escape(field.describe())}", highlight=False, soft_wrap=True)


@rewards_app.command("try")
def try_rewards(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Job config YAML.")] = None,
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="A preset name (see `adrpo presets`).")] = None,
    assignments: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override KEY=VALUE (dotted keys).")
    ] = None,
    samples: Annotated[int, typer.Option("--samples", "-n", min=1, max=16, help="Reference samples to score.")] = 4,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where images are written (flow jobs).")] = None,
) -> None:
    """Dry run: score a few of the reference model's samples for the first prompt with each reward."""
    try:
        job = resolve_job_config(config, preset, assignments or [])
        from .dry_run import reward_dry_run

        result = reward_dry_run(job, num_samples=samples, seed=seed, out_dir=out or Path("runs") / job.name / "dry-run")
    except ConfigError as error:
        errors.print(f"[red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    console.print(f"prompt: {escape(repr(result.prompt))}", highlight=False)
    for line in result.table_lines():
        console.print(escape(line), highlight=False, soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
