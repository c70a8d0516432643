"""A workspace's "Training alerts": each training-health rule on or off with its thresholds, and
the stall limits, on one page; read by everyone in the workspace, changed by its owners, used
by the sync (a rule turned off never fires, a threshold changed is the one applied)."""

from __future__ import annotations

import pytest

from jobs.models import AuditEvent, JobAlert, JobEvent, Membership, TrainingAlertSettings
from tests.support.accounts import new_user, track_remote_job
from tests.support.authorization import ALERT_DEFAULTS
from tests.support.tracked_jobs import move_back, refreshed


def alerts_url(workspace) -> str:
    return f"/workspaces/{workspace.pk}/alerts/"


def form_values(**changes) -> dict:
    """The page's form as it starts, with `changes` (None: a checkbox left unticked)."""
    values = {**ALERT_DEFAULTS, **changes}
    return {name: value for name, value in values.items() if value is not None}


def saved(workspace) -> TrainingAlertSettings | None:
    return TrainingAlertSettings.objects.filter(workspace=workspace).first()


# --- the page -------------------------------------------------------------------------------


def test_the_page_states_every_rule_with_its_default_until_the_owners_save(alice_client, alice):
    workspace = alice.personal_workspace
    page = alice_client.get(alerts_url(workspace)).content.decode()

    assert "<h1>Training alerts</h1>" in page and "Save training alerts" in page
    for name, label, value, default in (
        ("overfitting_rises", "Validation loss rises on this many checkpoints in a row", "2", "1 to 10; default 2."),
        ("diverged_factor", "A loss at least this many times the checkpoint before", "2.0", "1.1 to 100; default 2."),
        ("eta_slip_percent", "Finish estimate later by more than this % of the time it had left", "50", "default 50."),
        ("eta_slip_minutes", "and by at least this many minutes", "15", "From 1 to 10,080; default 15."),
        ("slow_percent", "Steps per minute below this % of the job&#x27;s own median", "40", "1 to 99; default 40."),
        ("slow_window_minutes", "over the last this many minutes", "15", "From 5 to 1,440; default 15."),
        ("queue_stall_minutes", "Queued or validating for more than (minutes)", "180", "1 to 43,200; default 180."),
    ):
        assert f'<label for="alerts_{name}">{label}</label>' in page
        assert f'name="{name}" value="{value}"' in page
        assert f'<div class="helptext" id="alerts_{name}_helptext">From ' in page and default in page
    for legend in ("Overfitting", "Diverged", "ETA slipped", "Slow", "Stalled"):
        assert f"<legend>{legend}</legend>" in page
    for switch in ("overfitting_on", "diverged_on", "eta_slipped_on", "slow_on"):
        assert f'name="{switch}" id="alerts_{switch}" checked' in page
    # The running-stall limit is the instance's, shown and not editable.
    assert "has not moved for 30 minutes" in page and "FTDASH_STALL_MINUTES" in page
    assert 'name="stall_minutes"' not in page
    assert "when the validation loss rises on 2 checkpoints in a row" in page
    assert saved(workspace) is None  # reading never writes


def test_an_owner_saves_the_rules_and_the_page_shows_them(alice_client, alice):
    workspace = alice.personal_workspace
    response = alice_client.post(
        alerts_url(workspace),
        form_values(
            overfitting_rises="3",
            diverged_factor="2.5",
            eta_slipped_on=None,
            eta_slip_minutes="30",
            slow_percent="25",
            slow_window_minutes="60",
            queue_stall_minutes="90",
        ),
        follow=True,
    )
    page = response.content.decode()
    assert response.status_code == 200 and "Saved the training alerts of alice (personal)." in page

    row = saved(workspace)
    assert (row.overfitting_on, row.overfitting_rises, row.diverged_factor) == (True, 3, 2.5)
    assert (row.eta_slipped_on, row.eta_slip_percent, row.eta_slip_minutes) == (False, 50, 30)
    assert (row.slow_on, row.slow_percent, row.slow_window_minutes) == (True, 25, 60)
    workspace.refresh_from_db()
    assert workspace.queue_stall_minutes == 90

    assert 'name="overfitting_rises" value="3"' in page and 'name="diverged_factor" value="2.5"' in page
    assert 'name="eta_slipped_on" id="alerts_eta_slipped_on">' in page  # unticked
    assert "when the validation loss rises on 3 checkpoints in a row" in page
    assert "at least 2.5 times the checkpoint before" in page
    assert '<strong>ETA slipped</strong>: <span class="badge badge-cancelled">off</span>' in page
    assert "below 25% of the job&#x27;s own median" in page and "over the last 60 min" in page
    assert "queued or validating for more than 90 min" in page


def test_saving_is_audited_with_what_changed_and_an_unchanged_save_records_nothing(alice_client, alice):
    workspace = alice.personal_workspace
    alice_client.post(alerts_url(workspace), form_values(overfitting_rises="4", slow_on=None, queue_stall_minutes="60"))

    [event] = AuditEvent.objects.filter(workspace=workspace, action="workspace.training_alerts")
    assert event.actor == alice
    assert event.description == (
        "training alerts: overfitting checkpoints in a row from 2 to 4; turned Slow off; "
        "the queue stall limit from 180 min to 60 min"
    )

    response = alice_client.post(
        alerts_url(workspace), form_values(overfitting_rises="4", slow_on=None, queue_stall_minutes="60"), follow=True
    )
    assert "The training alerts are unchanged." in response.content.decode()
    assert AuditEvent.objects.filter(workspace=workspace, action="workspace.training_alerts").count() == 1


def test_the_first_save_of_defaults_writes_nothing(alice_client, alice):
    workspace = alice.personal_workspace
    response = alice_client.post(alerts_url(workspace), form_values(), follow=True)
    assert "The training alerts are unchanged." in response.content.decode()
    assert saved(workspace) is None
    assert not AuditEvent.objects.filter(action="workspace.training_alerts").exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("overfitting_rises", "0", "Enter a whole number of checkpoints from 1 to 10."),
        ("overfitting_rises", "11", "Enter a whole number of checkpoints from 1 to 10."),
        ("overfitting_rises", "2.5", "Enter a whole number of checkpoints from 1 to 10."),
        ("overfitting_rises", "", "Enter a whole number of checkpoints from 1 to 10."),
        ("diverged_factor", "1", "Enter a factor from 1.1 to 100, such as 2 or 2.5."),
        ("diverged_factor", "100.5", "Enter a factor from 1.1 to 100, such as 2 or 2.5."),
        ("diverged_factor", "nan", "Enter a factor from 1.1 to 100, such as 2 or 2.5."),
        ("diverged_factor", "inf", "Enter a factor from 1.1 to 100, such as 2 or 2.5."),
        ("diverged_factor", "twice", "Enter a factor from 1.1 to 100, such as 2 or 2.5."),
        ("eta_slip_percent", "0", "Enter a whole percentage from 1 to 1,000."),
        ("eta_slip_percent", "1001", "Enter a whole percentage from 1 to 1,000."),
        ("eta_slip_minutes", "0", "Enter a whole number of minutes from 1 to 10,080 (a week)."),
        ("eta_slip_minutes", "10081", "Enter a whole number of minutes from 1 to 10,080 (a week)."),
        ("slow_percent", "0", "Enter a whole percentage from 1 to 99."),
        ("slow_percent", "100", "Enter a whole percentage from 1 to 99."),
        ("slow_window_minutes", "4", "Enter a whole number of minutes from 5 to 1,440 (a day)."),
        ("slow_window_minutes", "1441", "Enter a whole number of minutes from 5 to 1,440 (a day)."),
        ("queue_stall_minutes", "0", "Enter a whole number of minutes from 1 to 43,200 (30 days)."),
        ("queue_stall_minutes", "-5", "Enter a whole number of minutes from 1 to 43,200 (30 days)."),
        ("queue_stall_minutes", "43201", "Enter a whole number of minutes from 1 to 43,200 (30 days)."),
    ],
)
def test_an_invalid_value_is_refused_with_its_message_and_nothing_is_saved(alice_client, alice, field, value, message):
    workspace = alice.personal_workspace
    # Other changes in the same submission are not saved either.
    changes = {"overfitting_rises": "5", "queue_stall_minutes": "77", field: value}
    response = alice_client.post(alerts_url(workspace), form_values(**changes))

    assert response.status_code == 422
    page = response.content.decode()
    assert "Nothing was saved: correct the value marked below." in page
    assert f'<ul class="errorlist" id="alerts_{field}_error"><li>{message}</li></ul>' in page
    widget = page[page.index(f'name="{field}"') :].split(">", 1)[0]
    assert 'aria-invalid="true"' in widget and f"alerts_{field}_error" in widget
    assert page.count('aria-invalid="true"') == 1
    assert saved(workspace) is None
    workspace.refresh_from_db()
    assert workspace.queue_stall_minutes == 180
    assert not AuditEvent.objects.filter(action="workspace.training_alerts").exists()


# --- who may read and change it ---------------------------------------------------------------


@pytest.fixture
def dave(team):
    dave = new_user("dave")
    Membership.objects.create(workspace=team, user=dave, role=Membership.Role.VIEWER)
    return dave


@pytest.mark.parametrize("who", ["bob", "dave"])
def test_members_and_viewers_read_the_rules_but_cannot_change_them(client, team, bob, dave, who):
    client.force_login({"bob": bob, "dave": dave}[who])
    page = client.get(alerts_url(team)).content.decode()
    assert "<h1>Training alerts</h1>" in page and "Research team" in page
    assert "when the validation loss rises on 2 checkpoints in a row" in page
    assert "queued or validating for more than 180 min" in page
    assert "Only the workspace's owners can change its training alerts." in page
    assert "<form" not in page.split("<main", 1)[1].split("</main>", 1)[0]

    response = client.post(alerts_url(team), form_values(slow_on=None, queue_stall_minutes="5"))
    assert response.status_code == 403
    assert saved(team) is None
    team.refresh_from_db()
    assert team.queue_stall_minutes == 180


def test_an_outsider_gets_404_for_reading_and_for_changing(client, team, charlie):
    client.force_login(charlie)
    assert client.get(alerts_url(team)).status_code == 404
    assert client.post(alerts_url(team), form_values(slow_on=None)).status_code == 404
    assert saved(team) is None


def test_the_team_page_and_personal_settings_sum_the_rules_up_and_link_the_page(client, alice, bob, team):
    client.force_login(alice)
    client.post(alerts_url(team), form_values(diverged_on=None))
    team_page = client.get(f"/teams/{team.pk}/").content.decode()
    assert '<h2 id="training-alerts-heading">Training alerts</h2>' in team_page
    assert '<strong>Diverged</strong>: <span class="badge badge-cancelled">off</span>' in team_page
    assert f'<a href="/workspaces/{team.pk}/alerts/">Edit training alerts</a>' in team_page

    settings_page = client.get("/settings/").content.decode()
    assert '<h2 id="training-alerts-heading">Training alerts</h2>' in settings_page
    assert '<strong>Diverged</strong>: <span class="badge badge-running">on</span>' in settings_page
    assert f'<a href="/workspaces/{alice.personal_workspace.pk}/alerts/">Edit training alerts</a>' in settings_page

    client.force_login(bob)
    team_page = client.get(f"/teams/{team.pk}/").content.decode()
    assert f'<a href="/workspaces/{team.pk}/alerts/">View training alerts</a>' in team_page


# --- the notification channel form ------------------------------------------------------------


def _note(page: str, workspace, event: str) -> str:
    checkbox = f'id="id_ws{workspace.pk}_events_'
    start = page.index(f'value="{event}"', page.index(checkbox))
    return page[start : page.index("</div>", start)]  # its label, then its note


def test_the_channel_form_says_which_alert_rules_are_off_with_a_link_to_turn_them_on(client, alice, bob, team):
    client.force_login(alice)
    client.post(alerts_url(team), form_values(slow_on=None, overfitting_rises="3"))
    page = client.get("/notifications/").content.decode()

    slow = _note(page, team, "slow")
    assert "aria-describedby=" in slow
    assert "This rule is off for this workspace:" in slow
    assert f'<a href="/workspaces/{team.pk}/alerts/">turn it on under Training alerts</a>' in slow
    overfitting = _note(page, team, "overfitting")
    assert "When the validation loss rises on 3 checkpoints in a row" in overfitting
    assert "This rule is off" not in overfitting
    # Alice's own workspace keeps the defaults: nothing is off there.
    assert "This rule is off" not in _note(page, alice.personal_workspace, "slow")

    client.force_login(bob)  # a member subscribes by email, and cannot turn the rule on
    slow = _note(client.get("/notifications/").content.decode(), team, "slow")
    assert "This rule is off for this workspace; its owners turn it on under" in slow
    assert f'<a href="/workspaces/{team.pk}/alerts/">Training alerts</a>' in slow


def test_the_notifications_page_sends_owners_to_training_alerts_for_the_stall_limit(alice_client, alice):
    page = alice_client.get("/notifications/").content.decode()
    assert "Save stall limit" not in page and 'name="queue_stall_minutes"' not in page
    assert f'href="/workspaces/{alice.personal_workspace.pk}/alerts/">Training alerts' in page


# --- what the sync does with them -------------------------------------------------------------


def _checkpoint(fake_api, job_id: str, step: int, **metrics) -> None:
    fake_api.add_checkpoint(job_id, step_number=step, metrics=metrics)


def test_a_rule_turned_off_never_fires_and_fires_again_once_turned_on(fake_api, alice, alice_token, alice_client):
    workspace = alice.personal_workspace
    alice_client.post(alerts_url(workspace), form_values(diverged_on=None))
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=10)
    _checkpoint(fake_api, job.job_id, 10, train_loss=float("nan"))
    refreshed(job)

    assert job.checkpoints.count() == 1
    assert not JobAlert.objects.filter(job=job).exists()
    assert not JobEvent.objects.filter(job=job, kind="diverged").exists()

    alice_client.post(alerts_url(workspace), form_values())  # back to the defaults: diverged on
    fake_api.advance(job.job_id, 10)
    _checkpoint(fake_api, job.job_id, 20, train_loss=float("nan"))
    refreshed(job)

    [alert] = JobAlert.objects.filter(job=job)
    assert alert.rule == "diverged" and alert.cleared_at is None
    assert alert.message == "The train loss of epoch 2 is not a number (NaN or infinite)"
    assert JobEvent.objects.filter(job=job, kind="diverged").count() == 1


def test_the_overfitting_threshold_saved_is_the_one_applied(fake_api, alice, alice_token, alice_client):
    workspace = alice.personal_workspace
    alice_client.post(alerts_url(workspace), form_values(overfitting_rises="3"))
    job = track_remote_job(fake_api, alice, alice_token, total_steps=100, trained_steps=40)
    # The validation loss falls to epoch 2, then rises twice (the default's 2 would fire here).
    for step, loss in ((10, 0.9), (20, 0.8), (30, 0.85), (40, 0.9)):
        _checkpoint(fake_api, job.job_id, step, train_loss=1.0 - step / 100, valid_loss=loss, full_valid_loss=loss)
    refreshed(job)
    assert job.checkpoints.count() == 4
    assert not JobAlert.objects.filter(job=job).exists()

    fake_api.advance(job.job_id, 10)
    _checkpoint(fake_api, job.job_id, 50, train_loss=0.5, valid_loss=0.95, full_valid_loss=0.95)
    refreshed(job)

    [alert] = JobAlert.objects.filter(job=job)
    assert alert.rule == "overfitting"
    assert alert.message.startswith("Validation loss has risen for 3 checkpoints (0.8 → 0.85 → 0.9 → 0.95)")
    assert "the best checkpoint is epoch 2" in alert.message


def test_the_stall_limit_set_here_is_the_one_a_queued_job_stalls_after(fake_api, alice, alice_token, alice_client):
    job = track_remote_job(fake_api, alice, alice_token, status="queued")
    move_back(job, 61)
    refreshed(job)
    assert not JobEvent.objects.filter(job=job, kind="stalled").exists()  # the default is 180 min

    alice_client.post(alerts_url(alice.personal_workspace), form_values(queue_stall_minutes="60"))
    refreshed(job)
    [stall] = JobEvent.objects.filter(job=job, kind="stalled")
    assert stall.message == "Still queued after 61 min"
