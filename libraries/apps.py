from django.apps import AppConfig


class LibrariesConfig(AppConfig):
    name = "libraries"
    verbose_name = "Member libraries"

    def ready(self) -> None:
        from libraries import directory

        directory.connect_signals()
