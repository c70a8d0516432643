"""The jobs app: its system checks, and the personal workspace every new account gets."""

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Fine-tuning jobs"

    def ready(self) -> None:
        from jobs import checks  # noqa: F401  (registers the system checks)
        from jobs.services.accounts import on_user_saved

        post_save.connect(on_user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="jobs.personal_workspace")
