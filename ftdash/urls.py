from django.contrib.auth import views as auth_views
from django.urls import include, path

from jobs.forms import PlainPasswordChangeForm
from jobs.views.api import api
from jobs.views.api_docs import api_docs
from jobs.views.setup import SignInView

# Only the account views ftdash uses: there is no password reset by email (a self-hosted
# install often has no mail server); administrators set passwords instead.
urlpatterns = [
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(form_class=PlainPasswordChangeForm),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    # The JSON API (django-ninja, jobs.views.api): /api/v1/jobs… and its schema; its docs page is
    # ours (jobs.views.api_docs), rendered from that schema in the site's layout.
    path("api/v1/docs", api_docs, name="api_docs"),
    path("api/v1/", api.urls),
    path("", include("jobs.urls")),
]
