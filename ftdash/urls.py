from django.urls import include, path

from jobs.views.setup import SignInView

urlpatterns = [
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("jobs.urls")),
]
