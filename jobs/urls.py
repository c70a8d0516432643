from django.urls import path, register_converter

from jobs.converters import DatabaseIdConverter
from jobs.views import accounts, dashboard, live, notification_channels, setup, teams, tokens, tracked_jobs
from jobs.views import cancel, compare, export

from jobs.views import imports as job_imports

register_converter(DatabaseIdConverter, "id")

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("setup/", setup.first_admin, name="first_admin"),
    path("healthz", setup.healthz, name="healthz"),
    path("readyz", setup.readyz, name="readyz"),
    path("live/cards/", live.dashboard_cards, name="dashboard_live"),
    path("jobs/track/", dashboard.track_job, name="track_job"),
    path("jobs/<id:pk>/", tracked_jobs.job_detail, name="job_detail"),
    path("jobs/<id:pk>/live/", live.job_parts, name="job_live"),
    path("jobs/<id:pk>/refresh/", tracked_jobs.job_refresh, name="job_refresh"),
    path("jobs/<id:pk>/label/", tracked_jobs.job_label, name="job_label"),
    path("jobs/<id:pk>/remove/", tracked_jobs.job_remove, name="job_remove"),
    path("jobs/<id:pk>/move/", tracked_jobs.job_move, name="job_move"),
    path("jobs/<id:pk>/cancel/", cancel.job_cancel, name="job_cancel"),
    path("jobs/<id:pk>/export.json", export.job_export_json, name="job_export_json"),
    path("jobs/<id:pk>/metrics.csv", export.job_export_metrics, name="job_export_metrics"),
    path("jobs/export.csv", export.dashboard_export, name="dashboard_export"),
    path("jobs/compare/", compare.job_compare, name="job_compare"),
    path("tokens/", tokens.token_list, name="token_list"),
    path("tokens/<id:pk>/edit/", tokens.token_edit, name="token_edit"),
    path("tokens/<id:pk>/delete/", tokens.token_delete, name="token_delete"),
    path("tokens/<id:pk>/test/", tokens.token_test, name="token_test"),
    path("tokens/<id:pk>/import/", job_imports.token_import, name="token_import"),
    path("tokens/<id:pk>/import/start/", job_imports.import_start, name="token_import_start"),
    path("tokens/<id:pk>/import/resume/", job_imports.import_resume, name="token_import_resume"),
    path("tokens/<id:pk>/import/progress/", job_imports.import_progress, name="token_import_progress"),
    path("tokens/<id:pk>/import/track/", job_imports.import_track, name="token_import_track"),
    path("teams/", teams.team_list, name="team_list"),
    path("teams/<id:pk>/", teams.team_detail, name="team_detail"),
    path("teams/<id:pk>/rename/", teams.team_rename, name="team_rename"),
    path("teams/<id:pk>/delete/", teams.team_delete, name="team_delete"),
    path("teams/<id:pk>/leave/", teams.team_leave, name="team_leave"),
    path("teams/<id:pk>/members/add/", teams.member_add, name="member_add"),
    path("teams/<id:pk>/members/<id:member_pk>/role/", teams.member_role, name="member_role"),
    path("teams/<id:pk>/members/<id:member_pk>/remove/", teams.member_remove, name="member_remove"),
    path("teams/<id:pk>/invites/", teams.invite_create, name="invite_create"),
    path("teams/<id:pk>/invites/<id:invite_pk>/revoke/", teams.invite_revoke, name="invite_revoke"),
    path("teams/<id:pk>/invitations/<id:invitation_pk>/revoke/", teams.invitation_revoke, name="invitation_revoke"),
    path("teams/invitations/<id:pk>/accept/", teams.invitation_accept, name="invitation_accept"),
    path("teams/invitations/<id:pk>/decline/", teams.invitation_decline, name="invitation_decline"),
    path("workspaces/<id:pk>/audit/", teams.audit_trail, name="audit_trail"),
    path("notifications/", notification_channels.notification_list, name="notification_list"),
    path("notifications/workspaces/<id:pk>/channels/", notification_channels.channel_add, name="channel_add"),
    path("notifications/workspaces/<id:pk>/stalls/", notification_channels.stall_settings, name="stall_settings"),
    path("notifications/channels/<id:pk>/test/", notification_channels.channel_test, name="channel_test"),
    path("notifications/channels/<id:pk>/delete/", notification_channels.channel_delete, name="channel_delete"),
    path("invite/<str:secret>/", accounts.invite_accept, name="invite_accept"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/create/", accounts.account_create, name="account_create"),
]
