"""A running job's phase in the store, the API view and the log (issue 13, item 1)."""

from __future__ import annotations

from adrpo_engine.progress import BUILDING, TRAINING, Phase
from worker.lifecycle import StoreSink, claim_job
from worker.tasks import train_job

from .conftest import tiny_digits


def test_the_job_view_carries_the_phase_while_running_and_no_eta_before_training(service, worker_context, settings):
    job = service.submit(preset="digits-even", overrides=tiny_digits())
    claim_job(worker_context.store, job.id)
    assert service.get_job(job.id).phase == "starting"
    sink = StoreSink(worker_context.store, job.id, settings.run_dir(job.id))
    sink.on_phase(Phase(BUILDING, "builtin:digits-flow is built once: flow network step 10/3000", 10, 3000))
    view = service.get_job(job.id)
    assert view.phase == BUILDING and "step 10/3000" in view.phase_detail and view.eta_seconds is None
    assert "building model · builtin:digits-flow" in service.log_tail(job.id)


def test_phases_seen_during_a_run_end_in_training_and_a_finished_job_has_none(service, worker_context, monkeypatch):
    job = service.submit(preset="digits-even", overrides=tiny_digits())
    seen = []
    original = StoreSink.on_phase

    def spy(self, phase):
        original(self, phase)
        seen.append(service.get_job(job.id).phase)

    monkeypatch.setattr(StoreSink, "on_phase", spy)
    assert train_job(worker_context, job.id) == "succeeded"
    assert seen[0] == "loading model" and seen[-1] == TRAINING and "evaluating" in seen
    assert service.get_job(job.id).phase is None
