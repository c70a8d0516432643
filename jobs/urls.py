from django.urls import path

from jobs.views import dashboard, setup, tokens, tracked_jobs

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("setup/", setup.first_admin, name="first_admin"),
    path("healthz", setup.healthz, name="healthz"),
    path("jobs/track/", dashboard.track_job, name="track_job"),
    path("jobs/<int:pk>/", tracked_jobs.job_detail, name="job_detail"),
    path("jobs/<int:pk>/card/", tracked_jobs.job_card, name="job_card"),
    path("jobs/<int:pk>/live/", tracked_jobs.job_live, name="job_live"),
    path("jobs/<int:pk>/refresh/", tracked_jobs.job_refresh, name="job_refresh"),
    path("jobs/<int:pk>/label/", tracked_jobs.job_label, name="job_label"),
    path("jobs/<int:pk>/remove/", tracked_jobs.job_remove, name="job_remove"),
    path("tokens/", tokens.token_list, name="token_list"),
    path("tokens/<int:pk>/edit/", tokens.token_edit, name="token_edit"),
    path("tokens/<int:pk>/delete/", tokens.token_delete, name="token_delete"),
    path("tokens/<int:pk>/test/", tokens.token_test, name="token_test"),
]
