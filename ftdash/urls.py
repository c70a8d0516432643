from django.contrib.auth.views import PasswordChangeView
from django.urls import include, path

from jobs.forms import PlainPasswordChangeForm
from jobs.views.setup import SignInView

urlpatterns = [
    path("accounts/login/", SignInView.as_view(), name="login"),
    path(
        "accounts/password_change/",
        PasswordChangeView.as_view(form_class=PlainPasswordChangeForm),
        name="password_change",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("jobs.urls")),
]
